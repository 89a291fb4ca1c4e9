// systemd's OnCalendar syntax (systemd.time(7)), checked here so that a schedule the host's
// systemd would refuse stops the deployment instead of leaving a timer that never loads.
// The parser follows systemd's calendarspec.c: same grammar, same ranges, same
// normalisation before the range check. test/host/calendar.test.ts holds it against
// `systemd-analyze calendar` expression by expression.
//
// Two deliberate differences, both refusals: the only time zone is UTC (the host's clock is
// UTC, and systemd would take any tz database name), and `@<epoch seconds>` (a single run)
// is not a schedule.

const EXAMPLE = 'write e.g. "*-*-* 02:00:00" or daily';
// One line of calendar characters: a newline or "=" in the value could add settings to the timer.
const CALENDAR_CHARACTERS = /^[A-Za-z0-9*:.,/~ -]{1,100}$/;
const SHORTHANDS = new Set([
  "minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually", "quarterly",
  "semiannually", "semi-annually", "biannually", "bi-annually",
  // systemd still reads its old misspelling.
  "anually",
]);
// Longest names first where one starts with the other, as systemd matches prefixes.
const WEEKDAYS: [string, number][] = [
  ["Monday", 0], ["Mon", 0], ["Tuesday", 1], ["Tue", 1], ["Wednesday", 2], ["Wed", 2], ["Thursday", 3], ["Thu", 3],
  ["Friday", 4], ["Fri", 4], ["Saturday", 5], ["Sat", 5], ["Sunday", 6], ["Sun", 6],
];
const WEEKDAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const USEC_PER_SEC = 1_000_000;
const INT_MAX = 2 ** 31 - 1;

/**
 * Why `expression` is not a schedule systemd accepts, with the fix, or undefined when it is
 * one. A cron expression is recognised and translated where the translation means the same.
 */
export function checkOnCalendar(expression: string): string | undefined {
  const quoted = JSON.stringify(expression);
  const macro = cronMacro(expression);
  if (macro) return `${quoted} looks like a cron macro; ${macro}`;
  const characters = CALENDAR_CHARACTERS.test(expression);
  const problem = characters ? calendarProblem(expression) : "";
  if (problem === undefined) return undefined;
  const zone = /^(.+) ([A-Za-z][\w/+-]*\/[\w/+-]+|[A-Z]{3,5}[\dA-Z+-]*)$/.exec(expression);
  if (characters && zone && !WEEKDAYS.some(([name]) => name.toUpperCase() === zone[2]) && calendarProblem(zone[1]) === undefined) {
    return `${quoted} names the time zone ${zone[2]}, but the host's clock runs on UTC; give the time in UTC, optionally followed by " UTC"`;
  }
  const cron = cronFields(expression);
  if (cron) {
    const translated = cronToCalendar(cron);
    return translated
      ? `${quoted} looks like a cron expression; systemd writes it as ${translated}`
      : `${quoted} looks like a cron expression, which systemd does not read; see "CALENDAR EVENTS" in systemd.time(7) and ${EXAMPLE}`;
  }
  let why = problem ? `: ${problem}` : " ([weekdays] [year-month-day] [hour:minute[:second]] [UTC])";
  if (!characters) why = expression === "" ? "" : ": it must be one line of at most 100 letters, digits, spaces and * : . , / ~ -";
  return `${quoted} is not a systemd OnCalendar expression${why}; ${EXAMPLE}`;
}

/** One value or range of a calendar field, as systemd keeps it: stop -1 and repeat 0 when absent. */
interface Component {
  start: number;
  stop: number;
  repeat: number;
}
/** A field's components; undefined is `*`, which matches every value. */
type Chain = Component[] | undefined;

interface Spec {
  year?: Chain;
  month?: Chain;
  day?: Chain;
  endOfMonth: boolean;
  hour?: Chain;
  minute?: Chain;
  second?: Chain;
}

/** Thrown with the reason when there is one worth telling, or empty for a plain syntax error. */
class Invalid extends Error {}

/** undefined when systemd accepts the expression, else the reason ("" when it is just syntax). */
function calendarProblem(expression: string): string | undefined {
  // systemd strips exactly one space and UTC, in any case.
  const text = / utc$/i.test(expression) ? expression.slice(0, -4) : expression;
  if (text === "") return "";
  if (SHORTHANDS.has(text.toLowerCase())) return undefined;
  try {
    const cursor = new Cursor(text);
    const spec: Spec = { endOfMonth: false };
    weekdays(cursor);
    date(cursor, spec);
    time(cursor, spec);
    if (!cursor.done()) throw new Invalid();
    check(spec);
    return undefined;
  } catch (error) {
    if (error instanceof Invalid) return error.message;
    throw error;
  }
}

class Cursor {
  i = 0;
  constructor(readonly text: string) {}
  get char(): string {
    return this.text[this.i] ?? "";
  }
  done(): boolean {
    return this.i >= this.text.length;
  }
  skipSpaces(): void {
    while (this.char === " ") this.i++;
  }
}

/** `Mon`, `Monday`, lists with `,` and ranges with `..` (or the older `-`), then spaces. */
function weekdays(c: Cursor): void {
  let rangeFrom = -1;
  let first = true;
  for (;;) {
    const rest = c.text.slice(c.i).toLowerCase();
    const found = WEEKDAYS.find(([name]) => rest.startsWith(name.toLowerCase()));
    if (!found) {
      if (first) return;
      throw new Invalid();
    }
    const [name, day] = found;
    if (!["", "-", ".", ",", " "].includes(c.text[c.i + name.length] ?? "")) throw new Invalid(`"${c.text.slice(c.i).split(/[ ,.-]/)[0]}" is not a weekday`);
    if (rangeFrom > day) throw new Invalid(`the weekday range ${WEEKDAY_NAMES[rangeFrom]}..${WEEKDAY_NAMES[day]} runs backwards; ranges go from Mon to Sun`);
    c.i += name.length;
    if (c.done()) return;
    if (c.char === " ") return c.skipSpaces();
    if (c.char === ".") {
      if (rangeFrom >= 0 || c.text[c.i + 1] !== ".") throw new Invalid();
      rangeFrom = day;
      c.i += 2;
    } else if (c.char === "-") {
      if (rangeFrom >= 0) throw new Invalid();
      rangeFrom = day;
      c.i += 1;
    } else if (c.char === ",") {
      rangeFrom = -1;
      c.i += 1;
    }
    // A trailing comma is allowed, an open range is not.
    if (c.done() || c.char === " ") {
      c.skipSpaces();
      if (rangeFrom >= 0) throw new Invalid();
      return;
    }
    first = false;
  }
}

/** `[year-]month-day`, or nothing when what follows is the time (systemd then rewinds). */
function date(c: Cursor, spec: Spec): void {
  if (c.done()) return;
  const begin = c.i;
  const first = chain(c, false);
  if (c.done() || c.char === ":") {
    c.i = begin;
    return;
  }
  separator(c, spec);
  const second = chain(c, false);
  if (c.done() || c.char === " ") {
    c.skipSpaces();
    Object.assign(spec, { month: first, day: second });
    return;
  }
  if (spec.endOfMonth) throw new Invalid();
  separator(c, spec);
  const third = chain(c, false);
  if (!(c.done() || c.char === " ")) throw new Invalid();
  c.skipSpaces();
  Object.assign(spec, { year: first, month: second, day: third });
}

/** `-` between date fields, or `~` before a day counted from the end of the month. */
function separator(c: Cursor, spec: Spec): void {
  if (c.char === "~") spec.endOfMonth = true;
  else if (c.char !== "-") throw new Invalid();
  c.i++;
}

/** `hour:minute[:second]`; none at all is midnight. */
function time(c: Cursor, spec: Spec): void {
  const zero: Chain = [{ start: 0, stop: -1, repeat: 0 }];
  if (c.done()) {
    Object.assign(spec, { hour: zero, minute: zero, second: zero });
    return;
  }
  spec.hour = chain(c, false);
  if (c.char !== ":") throw new Invalid();
  c.i++;
  spec.minute = chain(c, false);
  if (c.done()) {
    spec.second = zero;
    return;
  }
  if (c.char !== ":") throw new Invalid();
  c.i++;
  spec.second = chain(c, true);
  if (!c.done()) throw new Invalid();
}

/** `*`, or values and ranges separated by commas, each with an optional `/repeat`. */
function chain(c: Cursor, seconds: boolean): Chain {
  if (c.char === "*") {
    c.i++;
    // Seconds keep `*` as "every second"; other fields as "any value".
    return seconds ? [{ start: 0, stop: -1, repeat: USEC_PER_SEC }] : undefined;
  }
  const components: Component[] = [];
  for (;;) {
    const start = decimal(c, seconds);
    let stop = -1;
    let repeat = 0;
    if (c.text.startsWith("..", c.i)) {
      c.i += 2;
      stop = decimal(c, seconds);
      repeat = seconds ? USEC_PER_SEC : 1;
    }
    if (c.char === "/") {
      c.i++;
      repeat = decimal(c, seconds);
      if (repeat === 0) throw new Invalid("a repetition of /0 never advances");
    } else if (seconds && stop >= 0 && start + repeat > stop) {
      throw new Invalid(`the seconds range ${start / USEC_PER_SEC}..${stop / USEC_PER_SEC} holds no whole second`);
    }
    if (!["", " ", ",", "-", "~", ":"].includes(c.char)) throw new Invalid();
    components.push({ start, stop, repeat });
    if (c.char !== ",") return components;
    c.i++;
  }
}

/** A decimal number; in seconds also a fraction (`05.25`), counted in microseconds. */
function decimal(c: Cursor, seconds: boolean): number {
  const digits = /^\d+/.exec(c.text.slice(c.i))?.[0];
  if (digits === undefined) throw new Invalid();
  c.i += digits.length;
  let value = Number(digits);
  if (value > INT_MAX) throw new Invalid(`${digits} is too large`);
  if (!seconds) return value;
  value *= USEC_PER_SEC;
  // One "." is a decimal point, two are a range.
  if (c.char === "." && c.text[c.i + 1] !== ".") {
    c.i++;
    const fraction = /^\d+/.exec(c.text.slice(c.i))?.[0];
    if (fraction === undefined) throw new Invalid();
    c.i += fraction.length;
    // Six digits count, the seventh rounds, like systemd's parse_fractional_part_u.
    value += Number(fraction.slice(0, 6).padEnd(6, "0")) + (fraction[6] !== undefined && fraction[6] >= "5" ? 1 : 0);
  }
  if (value > INT_MAX) throw new Invalid(`${digits} seconds is too large`);
  return value;
}

function check(spec: Spec): void {
  const endOfMonth = spec.endOfMonth && spec.day !== undefined;
  // Two-digit years are read as 1970–2069.
  for (const y of spec.year ?? []) {
    for (const key of ["start", "stop"] as const) {
      if (y[key] >= 0 && y[key] < 70) y[key] += 2000;
      else if (y[key] >= 70 && y[key] < 100) y[key] += 1900;
    }
  }
  valid("year", spec.year, 1970, 2199, false);
  valid("month", spec.month, 1, 12, false);
  valid(endOfMonth ? "day counted from the end of the month" : "day", spec.day, 1, 31, endOfMonth);
  valid("hour", spec.hour, 0, 23, false);
  valid("minute", spec.minute, 0, 59, false);
  valid("second", spec.second, 0, 60 * USEC_PER_SEC - 1, false, USEC_PER_SEC);
}

/** systemd's normalize_chain and chain_valid: ranges trimmed to their last repetition, then bounds. */
function valid(field: string, components: Chain, from: number, to: number, endOfMonth: boolean, unit = 1): void {
  const show = (n: number) => String(n / unit);
  // A day from the end of the month may reach back 28 days at most (February).
  const last = endOfMonth ? to - 3 : to;
  for (const c of components ?? []) {
    if (c.stop > c.start && c.repeat > 0) c.stop -= (c.stop - c.start) % c.repeat;
    if ((c.stop > c.start && c.start + c.repeat > c.stop) || c.start === c.stop) {
      c.repeat = 0;
      c.stop = -1;
    }
    for (const value of c.stop >= 0 ? [c.start, c.stop] : [c.start]) {
      if (value < from || value > last) throw new Invalid(`${field} ${show(value)} is outside ${show(from)}–${show(last)}`);
    }
    // A range's step of one unit is implied, not written.
    const step = c.repeat > 0 && !(c.stop >= 0 && c.repeat === unit) ? `/${show(c.repeat)}` : "";
    const written = `${field} ${show(c.start)}${c.stop >= 0 ? `..${show(c.stop)}` : ""}${step}`;
    if (c.repeat > last - from) throw new Invalid(`${written} repeats by more than the whole range ${show(from)}–${show(last)}`);
    if (c.stop >= 0 && c.start + c.repeat > c.stop) throw new Invalid(`${written} runs backwards`);
    if (c.stop < 0 && (endOfMonth ? c.start - c.repeat < from : c.start + c.repeat > last)) {
      throw new Invalid(`${written} would repeat past ${show(endOfMonth ? from : last)}, which systemd refuses; drop the /${show(c.repeat)} or start earlier`);
    }
  }
}

const CRON_MACROS: Record<string, string> = {
  yearly: "yearly", annually: "yearly", monthly: "monthly", weekly: "weekly", daily: "daily", midnight: "daily", hourly: "hourly",
};

function cronMacro(expression: string): string | undefined {
  const name = /^@([a-z]+)$/.exec(expression.trim())?.[1];
  if (name === undefined) return undefined;
  if (name === "reboot") return "a calendar cannot say \"at boot\" (a run missed while the host was down starts at boot anyway); use e.g. daily";
  return CRON_MACROS[name] ? `systemd writes it as ${CRON_MACROS[name]}` : undefined;
}

// Cron's minute and hour fields: digits, *, and the range, list and step marks.
const CRON_NUMERIC = /^[\d*][\d*,/-]*$/;
const CRON_FIELD = /^[\dA-Za-z*?][\dA-Za-z*?,/#-]*$/;

/** The five (or six, with seconds or a year) fields of a cron line, or undefined if it is none. */
function cronFields(expression: string): string[] | undefined {
  const fields = expression.trim().split(/\s+/);
  if (fields.length < 5 || fields.length > 6) return undefined;
  if (!fields.every((f) => CRON_FIELD.test(f)) || !CRON_NUMERIC.test(fields[0]) || !CRON_NUMERIC.test(fields[1])) return undefined;
  return fields;
}

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const CRON_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/**
 * The OnCalendar form of a classic five-field cron line, or undefined when there is none
 * with the same meaning: cron runs when either the day of month or the weekday matches,
 * systemd only when both do.
 */
function cronToCalendar(fields: string[]): string | undefined {
  if (fields.length !== 5) return undefined;
  const [minute, hour, day, month, weekday] = fields;
  if (day !== "*" && weekday !== "*") return undefined;
  const parts = [cronField(minute, 0), cronField(hour, 0), cronField(day, 1), cronField(month.toLowerCase().replace(/[a-z]{3}/g, (m) => String(MONTHS.indexOf(m) + 1)), 1)];
  const days = cronWeekdays(weekday);
  if (parts.includes(undefined) || days === undefined) return undefined;
  const [m, h, d, mo] = parts;
  const calendar = `${days}*-${mo}-${d} ${h}:${m}:00`;
  return calendarProblem(calendar) === undefined ? calendar : undefined;
}

/** A cron field of numbers in systemd's spelling: `a-b` is `a..b`, `*\/n` starts at the first value. */
function cronField(field: string, first: number): string | undefined {
  if (field === "*") return "*";
  const pad = (n: string) => n.padStart(2, "0");
  const items = field.split(",").map((item) => {
    const match = /^(?:(\*)|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(item);
    if (!match) return undefined;
    const [, star, start, stop, step] = match;
    const range = star ? pad(String(first)) : stop !== undefined ? `${pad(start)}..${pad(stop)}` : pad(start);
    return step !== undefined ? `${range}/${step}` : star ? undefined : range;
  });
  return items.includes(undefined) ? undefined : items.join(",");
}

/** A cron weekday field (0 or 7 is Sunday) as systemd weekdays and a space, or "" for every day. */
function cronWeekdays(field: string): string | undefined {
  if (field === "*") return "";
  const days = new Set<number>();
  for (const item of field.toLowerCase().replace(/[a-z]{3}/g, (d) => String(CRON_DAYS.indexOf(d))).split(",")) {
    const match = /^(\*|\d)(?:-(\d))?(?:\/([1-7]))?$/.exec(item);
    if (!match) return undefined;
    const [, start, stop, step] = match;
    const from = start === "*" ? 0 : Number(start);
    const to = start === "*" ? 7 : stop !== undefined ? Number(stop) : from;
    if (to > 7 || from > to) return undefined;
    for (let d = from; d <= to; d += Number(step ?? 1)) days.add((d + 6) % 7);
  }
  if (days.size === 7) return "";
  // Three or more consecutive days as a systemd range, which runs from Mon to Sun.
  const runs: string[] = [];
  const sorted = [...days].sort((a, b) => a - b);
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    if (j - i >= 2) runs.push(`${WEEKDAY_NAMES[sorted[i]]}..${WEEKDAY_NAMES[sorted[j]]}`);
    else runs.push(...sorted.slice(i, j + 1).map((d) => WEEKDAY_NAMES[d]));
    i = j + 1;
  }
  return `${runs.join(",")} `;
}
