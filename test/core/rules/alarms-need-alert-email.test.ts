import { alarmsNeedAlertEmail } from "../../../packages/core/src/config/rules/alarms-need-alert-email";
import { lines } from "./check";

test("alarm settings with an alert address, or no settings at all, pass", () => {
  expect(lines(alarmsNeedAlertEmail, { alertEmail: "ops@example.net", alarms: { rejectedMail: false } })).toEqual([]);
  expect(lines(alarmsNeedAlertEmail)).toEqual([]);
});

test("alarm settings without an alert address are refused at alarms", () => {
  expect(lines(alarmsNeedAlertEmail, { alarms: { backupAge: { threshold: 50 } } })).toEqual([
    "alarms: changes alarms that exist only with alertEmail (without an address there is no one to tell); set alertEmail, or leave alarms out",
  ]);
});
