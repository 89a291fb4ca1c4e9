import { distinctDkimSelectors } from "../../../packages/core/src/config/rules/distinct-dkim-selectors";
import { check, lines } from "./check";

test("fills the selectors: signing, next, previous", () => {
  expect(check(distinctDkimSelectors).ctx.dkimSelectors).toEqual(["mail"]);
  expect(check(distinctDkimSelectors, { dkimSelector: "b", dkimNextSelector: "c", dkimPreviousSelector: "a" }).ctx.dkimSelectors).toEqual(["b", "c", "a"]);
});

test("refuses a selector already published", () => {
  expect(lines(distinctDkimSelectors, { dkimNextSelector: "mail" })).toEqual(['dkimNextSelector: "mail" is already published (dkimSelector); each key needs its own selector']);
  expect(lines(distinctDkimSelectors, { dkimNextSelector: "b", dkimPreviousSelector: "b" })).toEqual([
    'dkimPreviousSelector: "b" is already published (dkimSelector or dkimNextSelector); each key needs its own selector',
  ]);
});
