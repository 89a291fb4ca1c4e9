/**
 * What only the host knows, read without SSH: the reports it writes below
 * `<parameterPath>/status/` in SSM (the bundle it runs; its health from the metrics timer).
 */
import { GetParametersByPathCommand, SSMClient } from "@aws-sdk/client-ssm";
import { HOST_BUNDLE_PARAMETERS, HOST_HEALTH_PARAMETER, HOST_STATUS_PREFIX, MONITORING_ALARMS } from "@mailstack/core";
import { CERTIFICATE_WARN_DAYS } from "./check-tls";
import { verdict, type Verdict } from "./check-verdict";

const { hostSilent, backupAge } = MONITORING_ALARMS;
/** The health report is written every five minutes: older than this, the timer (or the host) has stopped, as the `hostSilent` alarm judges. */
export const HEALTH_STALE_MINUTES = (hostSilent.period * hostSilent.evaluationPeriods) / 60;
/** The `backupAge` alarm's default: a daily backup missed by more than two hours. */
export const BACKUP_WARN_HOURS = backupAge.threshold;

/**
 * Every report of the host, by name relative to the stack's path. One GetParametersByPath on
 * the status prefix (rather than a GetParameter per report) is one round trip, and a report
 * the host has not written yet is simply absent rather than an error to tell from others.
 * The SDK takes region, credentials and AWS_ENDPOINT_URL_SSM from the standard environment.
 */
export async function readHostReports(parameterPath: string, timeoutMs: number): Promise<Map<string, string>> {
  const client = new SSMClient({ requestHandler: { requestTimeout: timeoutMs, connectionTimeout: timeoutMs } });
  const prefix = `${parameterPath}/${HOST_STATUS_PREFIX}`;
  const reports = new Map<string, string>();
  try {
    let token: string | undefined;
    do {
      const page = await client.send(new GetParametersByPathCommand({ Path: prefix, Recursive: false, WithDecryption: true, NextToken: token }));
      for (const p of page.Parameters ?? []) if (p.Name && p.Value !== undefined) reports.set(p.Name.slice(parameterPath.length + 1), p.Value);
      token = page.NextToken;
    } while (token);
  } finally {
    client.destroy();
  }
  return reports;
}

/** A readable reason an SSM read failed, with the fix for the usual ones. */
export function ssmProblem(error: unknown): string {
  const e = error as { name?: string; message?: string };
  const message = e.message ?? String(error);
  if (/region is missing/i.test(message)) return `${message}: set AWS_REGION to the stack's region`;
  if (e.name === "CredentialsProviderError" || /credential/i.test(message)) return `${message}: give AWS credentials (AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)`;
  return `${e.name && e.name !== "Error" ? `${e.name}: ` : ""}${message}`;
}

const short = (sha: unknown) => (typeof sha === "string" ? sha.slice(0, 12) : String(sha));

function parseReport(text: string | undefined): Record<string, unknown> | string | undefined {
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text);
    return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : "not a JSON object";
  } catch {
    return "not JSON";
  }
}

/**
 * The host bundle's report (mailstack-sync: `{running, attempted, result, reason, at}`)
 * against the bundle this deployment publishes.
 */
export function bundleVerdict(text: string | undefined, expected: string | undefined, parameter: string): Verdict {
  const id = "host:bundle";
  const check = "host bundle in force";
  const want = expected ? `running ${short(expected)}, applied` : "a bundle applied";
  const report = parseReport(text);
  if (report === undefined) return verdict(id, check, "fail", want, `no report in ${parameter} yet (the host has not run its first sync)`);
  if (typeof report === "string") return verdict(id, check, "fail", want, `${parameter} is ${report}`);
  const at = typeof report.at === "string" ? ` at ${report.at}` : "";
  const reason = typeof report.reason === "string" ? `: ${report.reason}` : "";
  if (expected === undefined) {
    return verdict(id, check, report.result === "applied" ? "ok" : "fail", want, `running ${short(report.running)}; last attempt ${short(report.attempted)} ${report.result}${reason}${at}`);
  }
  if (report.running === expected && report.result === "applied") return verdict(id, check, "ok", want, `running ${short(expected)}, applied${at}`);
  if (report.attempted === expected) return verdict(id, check, "fail", want, `${report.result}${reason}; still running ${short(report.running)}${at}`);
  return verdict(id, check, "fail", want, `not taken up yet: running ${short(report.running)}, last attempt ${short(report.attempted)} ${report.result}${at}`);
}

/** A figure of the report; null (the host could not measure it) and anything not a number read as absent. */
function figure(doc: Record<string, unknown>, key: string): number | undefined {
  const value = doc[key];
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/**
 * The health report of the metrics timer: its age, the queue, the last backup and the
 * certificate the host has installed. Fields it does not have are left out, fields it has
 * that this does not know are ignored, so either side can grow first. The figures are named
 * by their metric keys (HOST_METRICS: `queueDeferred`, `hoursSinceBackup`…), as
 * mailstack-metrics writes them.
 */
export function healthVerdicts(text: string | undefined, parameter: string, now: Date): Verdict[] {
  const report = parseReport(text);
  const age = verdict("host:health", "host health report", "ok", `written within ${HEALTH_STALE_MINUTES} min`, "");
  if (report === undefined) return [{ ...age, status: "fail", found: `no report in ${parameter} (is the metrics timer running?)` }];
  if (typeof report === "string") return [{ ...age, status: "fail", found: `${parameter} is ${report}` }];
  const at = typeof report.at === "string" ? new Date(report.at) : undefined;
  const verdicts: Verdict[] = [];
  if (!at || Number.isNaN(at.getTime())) verdicts.push({ ...age, status: "warn", found: `no valid "at" time in the report` });
  else {
    const minutes = Math.floor((now.getTime() - at.getTime()) / 60000);
    verdicts.push({ ...age, status: minutes > HEALTH_STALE_MINUTES ? "warn" : "ok", found: `written ${report.at} (${minutes} min ago)${minutes > HEALTH_STALE_MINUTES ? ": stale, the timer or the host has stopped" : ""}` });
  }
  const active = figure(report, "queueActive");
  const deferred = figure(report, "queueDeferred");
  if (active !== undefined || deferred !== undefined) {
    verdicts.push(verdict("host:queue", "mail queue on the host", "ok", "reported", `${active ?? "?"} active, ${deferred ?? "?"} deferred`));
  }
  const hours = figure(report, "hoursSinceBackup");
  if (hours !== undefined) {
    const late = hours > BACKUP_WARN_HOURS;
    verdicts.push(verdict("host:backup", "last successful backup", late ? "warn" : "ok", `within ${BACKUP_WARN_HOURS} h`, `${Math.round(hours * 10) / 10} h ago${late ? ": backups are failing or not running" : ""}`));
  }
  const days = figure(report, "certificateDaysLeft");
  if (days !== undefined) {
    const status = days < 0 ? "fail" : days < CERTIFICATE_WARN_DAYS ? "warn" : "ok";
    verdicts.push(verdict("host:certificate", "certificate installed on the host", status, `${CERTIFICATE_WARN_DAYS}+ days left`, days < 0 ? `expired ${-Math.floor(days)} days ago` : `${Math.floor(days)} days left`));
  }
  return verdicts;
}

export async function checkHost(parameterPath: string, expectedBundle: string | undefined, timeoutMs: number, now: () => Date): Promise<Verdict[]> {
  const bundleParameter = `${parameterPath}/${HOST_BUNDLE_PARAMETERS.status}`;
  const healthParameter = `${parameterPath}/${HOST_HEALTH_PARAMETER}`;
  let reports: Map<string, string>;
  try {
    reports = await readHostReports(parameterPath, timeoutMs);
  } catch (e) {
    const found = `could not read ${parameterPath}/${HOST_STATUS_PREFIX}/ from SSM: ${ssmProblem(e)}`;
    return [verdict("host:reports", "host reports in SSM", "fail", "readable", found)];
  }
  return [bundleVerdict(reports.get(HOST_BUNDLE_PARAMETERS.status), expectedBundle, bundleParameter), ...healthVerdicts(reports.get(HOST_HEALTH_PARAMETER), healthParameter, now())];
}
