/**
 * The core's OnCalendar check against systemd's own parser: for every expression below,
 * `systemd-analyze calendar` and checkOnCalendar must agree on whether it is a schedule.
 * The table covers each part of the grammar on both sides of its edge; the cron forms the
 * core recognises, and its translations of them, are checked here too.
 */
import { checkOnCalendar } from "@mailstack/core";
import { requireTools, run } from "../support/tools";

requireTools("systemd-analyze");

// TZ is pinned: systemd also reads the local zone's abbreviation as a time zone.
const systemdAccepts = (expression: string) => run("systemd-analyze", ["calendar", expression], { env: { ...process.env, TZ: "UTC" } }).status === 0;

const VALID = [
  "daily",
  "Daily",
  "minutely",
  "hourly",
  "weekly",
  "monthly",
  "yearly",
  "annually",
  "quarterly",
  "semiannually",
  "semi-annually",
  "daily UTC",
  "quarterly utc",
  "*-*-* 02:00:00",
  "02:00",
  "1:2:3",
  "Mon",
  "monday 02:00",
  "Mon,Fri",
  "Mon,",
  "Mon-Fri",
  "Mon..Wed,Fri",
  "Sat..Sun 00:00",
  "Mon..Fri *-*-* 01,13:30",
  "Sun *-*-1..7 03:00 UTC",
  "*-*-* 00/6:00:00",
  "*:0/15",
  "*:*",
  "*:*:*",
  "*-*",
  "1-1",
  "24-01-01",
  "2199-12-31",
  "2024-*-* 1,2,3:00",
  "*-*-* 00..23/2:00",
  "*-*-* 5..5:00",
  "*-*-* 1..3/50:00",
  "*-*-* 22/1:00",
  "*-*-* 02:00:59.5",
  "*-*-* 02:00:00.1234567",
  "*-*-* *:*:30..40/5",
  "*-*~01",
  "*-02~03",
  "*-*~28",
  "Mon *-05~07/1",
  "*-*-*  02:00",
  "*-02-30",
];

const INVALID = [
  "",
  "*",
  "UTC",
  " daily",
  "daily ",
  "daily  UTC",
  "hourly Mon",
  "Mond",
  "Mon, Fri",
  "Mon..",
  "Fri..Mon",
  "Mon..Wed..Fri",
  "Mon Tue",
  "*-*-* 02:00 Mon",
  "*-*-* 02",
  "*-*-*-*",
  "*-*-* 0,:00",
  "*-*-* ,1:00",
  "*-*-* 25:00",
  "*-*-* 02:60",
  "*-*-* 02:00:60",
  "*-*-* 02:00:00.",
  "*-13-01",
  "*-*-32",
  "1969-01-01",
  "2200-01-01",
  "*-*-* 7..1:00",
  "*-*-* 0/24:00",
  "*-*-* 1/50:00",
  "*:50/15",
  "*-*-* */2:00",
  "*-*-* 02:00:5..5",
  "*-*~29",
  "*-*~07..01",
  "*-*-1~2",
  "2024~01-01",
  "0 2 * * *",
  "*/15 * * * *",
];

describe("checkOnCalendar agrees with systemd-analyze calendar", () => {
  test("the tables are large and disjoint", () => {
    expect(VALID.length + INVALID.length).toBeGreaterThanOrEqual(60);
    expect(VALID.filter((e) => INVALID.includes(e))).toEqual([]);
  });

  test.each(VALID)("%j is a schedule", (expression) => {
    expect({ systemd: systemdAccepts(expression), core: checkOnCalendar(expression) }).toEqual({ systemd: true, core: undefined });
  });

  test.each(INVALID)("%j is not", (expression) => {
    expect({ systemd: systemdAccepts(expression), core: typeof checkOnCalendar(expression) }).toEqual({ systemd: false, core: "string" });
  });
});

describe("where the core is stricter, on purpose", () => {
  // The host's clock is UTC; a time zone name in a schedule only invites confusion.
  // `@<seconds>` is a single run, not a backup schedule.
  test.each(["daily Europe/Berlin", "Mon 02:00 CET", "daily GMT", "@1700000000"])("%j: systemd accepts it, the core refuses it", (expression) => {
    expect({ systemd: systemdAccepts(expression), core: typeof checkOnCalendar(expression) }).toEqual({ systemd: true, core: "string" });
  });
});

describe("cron lines are translated into what systemd reads", () => {
  test.each([
    ["0 2 * * *", "*-*-* 02:00:00"],
    ["*/15 * * * *", "*-*-* *:00/15:00"],
    ["30 1 * * 1-5", "Mon..Fri *-*-* 01:30:00"],
    ["0 3 1 * *", "*-*-01 03:00:00"],
    ["0 4 * * sun", "Sun *-*-* 04:00:00"],
    ["15 */6 * jan,jul *", "*-01,07-* 00/6:15:00"],
    ["0 0 * * 5-7", "Fri..Sun *-*-* 00:00:00"],
  ])("%j is %j, which systemd accepts", (cron, calendar) => {
    expect(checkOnCalendar(cron)).toBe(`"${cron}" looks like a cron expression; systemd writes it as ${calendar}`);
    expect(systemdAccepts(calendar)).toBe(true);
  });

  test("a cron line without an equal calendar is recognised without a translation", () => {
    // Cron runs on the 1st or on Mondays; systemd would need both.
    expect(checkOnCalendar("0 2 1 * 1")).toMatch(/^"0 2 1 \* 1" looks like a cron expression, which systemd does not read; see "CALENDAR EVENTS" in systemd.time\(7\)/);
  });
});
