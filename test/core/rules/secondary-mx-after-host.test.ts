import { secondaryMxAfterHost } from "../../../packages/core/src/config/rules/secondary-mx-after-host";
import { check, lines } from "./check";

test("this host first, then the others 10 apart unless given", () => {
  const { issues, ctx } = check(secondaryMxAfterHost, { secondaryMx: [{ host: "MX2.example.net." }, { host: "mx3.example.net", priority: 45 }, { host: "mx4.example.net" }] });
  expect(issues).toEqual([]);
  expect(ctx.mx).toEqual([
    { host: "mail.example.com", priority: 10 },
    { host: "mx2.example.net", priority: 20 },
    { host: "mx3.example.net", priority: 45 },
    { host: "mx4.example.net", priority: 40 },
  ]);
});

test("refuses a priority before this host's and a host listed twice", () => {
  expect(lines(secondaryMxAfterHost, { secondaryMx: [{ host: "mx2.example.net", priority: 10 }, { host: "mail.example.com" }] })).toEqual([
    "secondaryMx[0].priority: 10 would put it before this host (10); use a number above 10",
    'secondaryMx[1].host: "mail.example.com" is already an MX host; remove it',
  ]);
});
