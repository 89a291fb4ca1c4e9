/** What `mailstack check` reports: one verdict per line, the table, the JSON and the exit code. */

/** ok: as intended. warn: works, but needs attention or could not be checked. fail: broken. */
export type Status = "ok" | "warn" | "fail";

export interface Verdict {
  /** Stable across runs, for scripts: `dns:MX:example.com`, `port:25`, `dnsbl:zen:192.0.2.1`… */
  id: string;
  /** What was checked, for people. */
  check: string;
  status: Status;
  expected: string;
  found: string;
}

export interface Report {
  /** Whether the run passes: no fail, and with `strict` no warn either. */
  ok: boolean;
  strict: boolean;
  /** When the last round of checks started (ISO 8601). */
  checkedAt: string;
  /** Rounds run: more than one with `--wait`. */
  rounds: number;
  summary: Record<Status, number>;
  checks: Verdict[];
}

export const verdict = (id: string, check: string, status: Status, expected: string, found: string): Verdict => ({ id, check, status, expected, found });

/** The verdicts that keep a run from passing. */
export function blocking(verdicts: Verdict[], strict: boolean): Verdict[] {
  return verdicts.filter((v) => v.status === "fail" || (strict && v.status === "warn"));
}

export function report(verdicts: Verdict[], strict: boolean, checkedAt: Date, rounds: number): Report {
  const summary: Record<Status, number> = { ok: 0, warn: 0, fail: 0 };
  for (const v of verdicts) summary[v.status]++;
  return { ok: blocking(verdicts, strict).length === 0, strict, checkedAt: checkedAt.toISOString(), rounds, summary, checks: verdicts };
}

/** 0 when the run passes, 1 otherwise (2, usage errors, is decided before any check runs). */
export const exitCode = (r: Report): number => (r.ok ? 0 : 1);

/** Long values (a DKIM key) keep their start and end in the table; the JSON has them whole. */
function clip(text: string, width: number): string {
  const flat = text.replace(/\s+/g, " ");
  if (flat.length <= width) return flat;
  const half = Math.floor((width - 1) / 2);
  return `${flat.slice(0, half)}…${flat.slice(flat.length - (width - 1 - half))}`;
}

export function formatReport(r: Report): string {
  const rows = r.checks.map((v) => [v.status.toUpperCase(), v.check, clip(v.expected, 60), clip(v.found, 70)]);
  const header = ["STATUS", "CHECK", "EXPECTED", "FOUND"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  const verdictWord = r.ok ? "passed" : "FAILED";
  const tail = `${r.summary.ok} ok, ${r.summary.warn} warn, ${r.summary.fail} fail: ${verdictWord}${r.strict ? " (--strict: warnings fail)" : ""}`;
  return [line(header), ...rows.map(line), "", tail].join("\n");
}
