// What checkOnCalendar says about a bad schedule. Whether it agrees with systemd on what is
// a schedule is test/host/calendar.test.ts, against systemd-analyze itself.
import { checkOnCalendar } from "@mailstack/core";

test.each([
  ["*-*-* 25:00", '"*-*-* 25:00" is not a systemd OnCalendar expression: hour 25 is outside 0–23; write e.g. "*-*-* 02:00:00" or daily'],
  ["Fri..Mon", "the weekday range Fri..Mon runs backwards; ranges go from Mon to Sun"],
  ["Mond 02:00", '"Mond" is not a weekday'],
  ["*-*-* 7..1:00", "hour 7..1 runs backwards"],
  ["*-*-* 0/24:00", "hour 0/24 repeats by more than the whole range 0–23"],
  ["*:50/15", "minute 50/15 would repeat past 59, which systemd refuses; drop the /15 or start earlier"],
  ["*-*~29", "day counted from the end of the month 29 is outside 1–28"],
  ["*-*-* 02:00:61", "second 61 is outside 0–59.999999"],
  ["*", "is not a systemd OnCalendar expression ([weekdays] [year-month-day] [hour:minute[:second]] [UTC])"],
  ["daily\nExecStart=/bin/sh", "is not a systemd OnCalendar expression: it must be one line of at most 100 letters, digits, spaces and * : . , / ~ -"],
  ["", '"" is not a systemd OnCalendar expression; write e.g. "*-*-* 02:00:00" or daily'],
])("%j: %s", (expression, message) => {
  expect(checkOnCalendar(expression)).toContain(message);
});

test("a cron line says so, with the systemd form when it means the same", () => {
  expect(checkOnCalendar("0 2 * * *")).toBe('"0 2 * * *" looks like a cron expression; systemd writes it as *-*-* 02:00:00');
  expect(checkOnCalendar("0 0 2 * * ?")).toContain("looks like a cron expression, which systemd does not read");
  expect(checkOnCalendar("Mon Tue Wed Thu Fri")).not.toContain("cron");
  expect(checkOnCalendar("0 2 * * */2")).toContain("systemd writes it as Tue,Thu,Sat,Sun *-*-* 02:00:00");
  expect(checkOnCalendar("0 2 * * */0")).toContain("which systemd does not read");
});

test("a cron macro says what systemd calls it", () => {
  expect(checkOnCalendar("@daily")).toBe('"@daily" looks like a cron macro; systemd writes it as daily');
  expect(checkOnCalendar("@midnight")).toContain("systemd writes it as daily");
  expect(checkOnCalendar("@reboot")).toContain('a calendar cannot say "at boot"');
});

test("a time zone other than UTC is refused with the reason", () => {
  expect(checkOnCalendar("Mon 02:00 Europe/Berlin")).toBe(
    '"Mon 02:00 Europe/Berlin" names the time zone Europe/Berlin, but the host\'s clock runs on UTC; give the time in UTC, optionally followed by " UTC"',
  );
  expect(checkOnCalendar("Mon 02:00 UTC")).toBeUndefined();
});
