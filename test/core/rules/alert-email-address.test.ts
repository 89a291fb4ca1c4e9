import { alertEmailAddress } from "../../../packages/core/src/config/rules/alert-email-address";
import { check, lines } from "./check";

test("fills the address, normalised, or nothing without one", () => {
  expect(check(alertEmailAddress, { alertEmail: "Ops@Example.net" }).ctx.alertEmail).toBe("ops@example.net");
  expect(check(alertEmailAddress).ctx.alertEmail).toBeUndefined();
});

test("refuses what is not an address", () => {
  expect(lines(alertEmailAddress, { alertEmail: "ops" })[0]).toMatch(/^alertEmail: .*is not an e-mail address/);
});
