/**
 * What the host reports to CloudWatch and what the stack watches there: the one list the
 * host's metrics script, the log shipper, the Pulumi component (metric filters, alarms,
 * dashboard) and the tests share, so that a metric renamed on one side cannot go unwatched.
 */

import { HOST_STATUS_PREFIX } from "./layout";

/** CloudWatch namespace of the metrics the host pushes; the log filters' are below it, per host ({@link filterMetricNamespace}). */
export const METRIC_NAMESPACE = "mailstack";

/**
 * The metrics' one dimension, valued with the host name: stable across instance replacements,
 * so the alarms and the dashboard keep watching a replaced host.
 */
export const METRIC_DIMENSION = "Host";

/**
 * The host's log group: named like the stack's SSM path (`/mailstack/<project>/<stack>/<name>`
 * by default), which is unique per stack in an account and region and already pinned by
 * stacks that predate the project in the path.
 */
export function logGroupName(ssmPath: string): string {
  return ssmPath;
}

/**
 * Below the stack's SSM path, where the metrics timer also reports the host's health as one
 * JSON document (see docs/operations.md), for `mailstack check` to read without SSH.
 */
export const HOST_HEALTH_PARAMETER = `${HOST_STATUS_PREFIX}/health`;

/** CloudWatch units used here. */
export type MetricUnit = "Count" | "Percent" | "None";

/** A metric the host pushes itself, on a timer (`mailstack-metrics`). */
export interface HostMetric {
  /** Its CloudWatch name, in {@link METRIC_NAMESPACE} with the {@link METRIC_DIMENSION} dimension. */
  readonly name: string;
  /** Its CloudWatch unit. */
  readonly unit: MetricUnit;
  /** What it measures, for the docs, the alarms and the dashboard. */
  readonly summary: string;
}

/** A metric's key in {@link HOST_METRICS} (and in the host's health document). */
export type HostMetricKey = "queueActive" | "queueDeferred" | "dataVolumeUsed" | "hoursSinceBackup" | "certificateDaysLeft" | "bundleApplied";

/** Every metric the host's timer pushes, by key. */
export const HOST_METRICS: Readonly<Record<HostMetricKey, HostMetric>> = {
  queueActive: { name: "QueueActive", unit: "Count", summary: "messages in Postfix's incoming and active queues" },
  queueDeferred: { name: "QueueDeferred", unit: "Count", summary: "messages in Postfix's deferred queue, waiting for a retry" },
  dataVolumeUsed: { name: "DataVolumeUsedPercent", unit: "Percent", summary: "share of the data volume in use (mail, indexes, queue)" },
  hoursSinceBackup: {
    name: "HoursSinceBackup",
    unit: "None",
    summary: "hours since the last successful offsite backup (since the host's first boot while there has been none)",
  },
  certificateDaysLeft: { name: "CertificateDaysLeft", unit: "None", summary: "days until the TLS certificate in use expires" },
  bundleApplied: {
    name: "HostBundleApplied",
    unit: "None",
    summary: "1 while the host runs the bundle the stack names; 0 when it refused or rolled back the last one",
  },
};

/**
 * The document the metrics timer writes to {@link HOST_HEALTH_PARAMETER} at each run: the
 * values it pushed to CloudWatch, keyed as {@link HOST_METRICS} (null: could not be measured,
 * and not pushed), and what they were measured from (docs/operations.md lists the fields).
 */
export type HostHealth = { [K in HostMetricKey]: number | null } & {
  /** When the timer measured, `YYYY-MM-DDTHH:MM:SSZ`. */
  readonly at: string;
  /** The host name (the metrics' dimension). */
  readonly host: string;
  /** When the last successful backup started, or null when there has been none on this host. */
  readonly lastBackup: string | null;
  /** The certificate's notAfter, `YYYY-MM-DDTHH:MM:SSZ`, or null when it cannot be read. */
  readonly certificateExpires: string | null;
  /** The SHA-256 of the host bundle in force, or null before the first is installed. */
  readonly bundle: string | null;
};

/**
 * A metric filter on the shipped journal. `terms` are matched as CloudWatch matches a filter
 * pattern of quoted terms on an unstructured event: each one a case-sensitive substring, all
 * of them required. The pattern sent to CloudWatch is built from them ({@link filterPattern}),
 * so the tests match real log lines with exactly what CloudWatch gets.
 */
export interface LogMetricFilter {
  /** The name of the metric it counts into, in {@link filterMetricNamespace}. */
  readonly metric: string;
  /** Substrings an event must all contain to count; none holds a double quote. */
  readonly terms: readonly string[];
  /** What it counts, for the docs, the alarms and the dashboard. */
  readonly summary: string;
}

/** A filter's key in {@link LOG_METRIC_FILTERS}. */
export type LogMetricFilterKey =
  | "smtpAuthFailures"
  | "imapAuthFailures"
  | "rejected"
  | "deferred"
  | "bounced"
  | "remoteBlocklisted"
  | "dkimSigningErrors"
  | "rateLimited"
  | "unitFailures";

/**
 * How the shipper writes each journal entry as a CloudWatch event: `IDENTIFIER[PID]: MESSAGE`,
 * as syslog would, so the filters can tell the program (`postfix/smtp[`) from the text.
 */
export function logEventText(identifier: string, pid: string | number | undefined, message: string): string {
  return `${identifier}${pid === undefined || pid === "" ? "" : `[${pid}]`}: ${message}`;
}

/** The metric filters on the host's log group, by key. */
export const LOG_METRIC_FILTERS: Readonly<Record<LogMetricFilterKey, LogMetricFilter>> = {
  // smtpd logs `SASL LOGIN authentication failed: …`; the colon leaves out Postfix's own SMTP
  // client, whose `SASL authentication failed; server … said: 535` (sesOutbound's relay refusing
  // the stack's credentials) is no one guessing passwords.
  smtpAuthFailures: { metric: "SmtpAuthFailures", terms: ["SASL", "authentication failed:"], summary: "failed SMTP AUTH logins (submission, 465 and 587)" },
  imapAuthFailures: { metric: "ImapAuthFailures", terms: ["-login: ", "auth failed"], summary: "failed IMAP and POP3 logins" },
  // A permanent refusal's reply is logged after ": " (`…]: 550 5.1.1 <x>`, `…]: 5.7.1 Spam`);
  // the temporary ones (postscreen's test of every new server, greylisting) are normal traffic.
  rejected: {
    metric: "RejectedMail",
    terms: ["reject:", ": 5"],
    summary: "mail refused for good by Postfix's checks or by rspamd (unknown users, relaying, spam); not the temporary refusals of greylisting and postscreen",
  },
  deferred: { metric: "DeferredDeliveries", terms: ["status=deferred"], summary: "delivery attempts that will be retried" },
  bounced: { metric: "BouncedMail", terms: ["status=bounced"], summary: "messages returned to their sender as undeliverable" },
  remoteBlocklisted: {
    metric: "RemoteBlocklistRefusals",
    terms: ["said:", "blocked using"],
    summary: "outbound deliveries a remote server refused because a blocklist (e.g. Spamhaus) lists the host",
  },
  // rspamd 3.4, a key missing or unreadable: `<id>; proxy; dkim_module_load_key_format: cannot
  // load dkim key …`. Not "dkim" and "cannot" alone: checking inbound signatures logs those too.
  dkimSigningErrors: { metric: "DkimSigningErrors", terms: ["cannot load dkim key"], summary: "outbound messages rspamd could not DKIM-sign (a signing key it cannot load)" },
  rateLimited: { metric: "RateLimitRefusals", terms: ["ratelimit", "mailstack_", "exceeded"], summary: "submissions refused by the per-login sending limits" },
  unitFailures: { metric: "HostUnitFailures", terms: ["mailstack-failure"], summary: "failed runs of the host's own units (backup, certificate, sync)" },
};

/**
 * The CloudWatch filter pattern of a filter's terms: each quoted, all required. A term holds
 * no double quote, so no escaping is involved.
 */
export function filterPattern(filter: LogMetricFilter): string {
  return filter.terms.map((t) => JSON.stringify(t)).join(" ");
}

/** Whether CloudWatch would count a shipped event with {@link filterPattern}. */
export function filterMatches(filter: LogMetricFilter, eventText: string): boolean {
  return filter.terms.every((t) => eventText.includes(t));
}

// ---------------------------------------------------------------------------------------------
// What the stack watches: where the filters' metrics live, the log retention, the alarms.

/**
 * Namespace of the metric filters' metrics of one host. CloudWatch sets a filter metric's
 * dimensions only from fields of JSON or space-delimited events (`$.field`, `$field`), and never
 * together with a default value; the shipped events are plain text matched by quoted terms, so
 * the {@link METRIC_DIMENSION} the host's own metrics carry cannot be set on them. Without it,
 * two stacks in one account and region would add up each other's counts in one metric, so the
 * host name (the dimension's value) goes into the namespace instead.
 */
export function filterMetricNamespace(hostname: string): string {
  return `${METRIC_NAMESPACE}/${hostname}`;
}

/** The retention periods CloudWatch Logs accepts for a log group, in days. */
export const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653] as const;

/** A metric as CloudWatch names it: what an alarm or a dashboard widget refers to. */
export interface MetricId {
  /** `mailstack` for the host's metrics, `mailstack/<host name>` for the filters'. */
  readonly namespace: string;
  /** The metric's name, e.g. `QueueDeferred`. */
  readonly metricName: string;
  /** Empty for a filter's metric (see {@link filterMetricNamespace}). */
  readonly dimensions: Readonly<Record<string, string>>;
}

/** What an alarm watches: a metric the host pushes, or one a log filter counts, by its table key. */
export type AlarmMetric =
  | {
      /** Key of the metric in {@link HOST_METRICS}. */
      readonly host: HostMetricKey;
    }
  | {
      /** Key of the filter in {@link LOG_METRIC_FILTERS}. */
      readonly filter: LogMetricFilterKey;
    };

/** The CloudWatch name of a host's or a filter's metric on the host `hostname`. */
export function metricId(metric: AlarmMetric, hostname: string): MetricId {
  if ("host" in metric) return { namespace: METRIC_NAMESPACE, metricName: HOST_METRICS[metric.host].name, dimensions: { [METRIC_DIMENSION]: hostname } };
  return { namespace: filterMetricNamespace(hostname), metricName: LOG_METRIC_FILTERS[metric.filter].metric, dimensions: {} };
}

/** One CloudWatch alarm on a mailstack metric, with the defaults an operator would choose. */
export interface MonitoringAlarm {
  /** The metric it watches. */
  readonly metric: AlarmMetric;
  /** How a period's data points are summarised: Sum for counts, SampleCount for "did the host report". */
  readonly statistic: "Sum" | "Minimum" | "Maximum" | "SampleCount";
  /** Seconds a data point covers: the host pushes every 5 minutes, so never less than 300. */
  readonly period: number;
  /** How many periods in a row must breach before the alarm fires. */
  readonly evaluationPeriods: number;
  /** The default threshold, compared with the statistic by `comparison`. */
  readonly threshold: number;
  /** Where an operator may move the threshold (`alarms.<key>.threshold`). */
  readonly thresholdRange: {
    /** Lowest threshold accepted. */
    readonly min: number;
    /** Highest threshold accepted. */
    readonly max: number;
    /** Whether it counts whole things (messages, days), so only integers make sense. */
    readonly integer: boolean;
  };
  /** How the statistic is compared with the threshold. */
  readonly comparison: "GreaterThanOrEqualToThreshold" | "GreaterThanThreshold" | "LessThanThreshold";
  /**
   * A filter's metric has a data point for every shipped event (0 when it does not match), and
   * the host's every 5 minutes: missing data means the host stopped reporting, which one alarm
   * of its own watches (`hostSilent`), so the others do not fire on it too.
   */
  readonly treatMissingData: "breaching" | "notBreaching";
  /** What happened, in words, for a threshold. */
  readonly condition: (threshold: number) => string;
  /** What the operator should do. */
  readonly action: string;
}

const FIVE_MINUTES = 300;
const ONE_HOUR = 3600;
const count = (max: number) => ({ min: 1, max, integer: true });
/** What every alarm on a log filter's count shares: it fires on the period's sum reaching the threshold. */
const COUNT_IN_LOGS = { statistic: "Sum", evaluationPeriods: 1, comparison: "GreaterThanOrEqualToThreshold", treatMissingData: "notBreaching" } as const;

/** An alarm's key in {@link MONITORING_ALARMS} and in the configuration's `alarms`; the table must have exactly these. */
export type MonitoringAlarmKey =
  | "smtpAuthFailures"
  | "imapAuthFailures"
  | "rateLimited"
  | "remoteBlocklisted"
  | "dkimSigningErrors"
  | "unitFailures"
  | "rejectedMail"
  | "bouncedMail"
  | "deferredQueue"
  | "activeQueueStuck"
  | "dataVolumeFull"
  | "backupAge"
  | "certificateExpiry"
  | "bundleNotApplied"
  | "hostSilent";

/**
 * Every alarm MailMonitoring creates (with an alert address), by the key that `alarms` in the
 * configuration uses to turn one off or move its threshold.
 */
export const MONITORING_ALARMS: Readonly<Record<MonitoringAlarmKey, MonitoringAlarm>> = {
  smtpAuthFailures: {
    metric: { filter: "smtpAuthFailures" },
    ...COUNT_IN_LOGS,
    period: FIVE_MINUTES,
    threshold: 50,
    thresholdRange: count(100000),
    condition: (n) => `${n} or more failed SMTP logins in 5 minutes`,
    action:
      "Password guessing, or a client with an old password. In the matching lines, one source address is a campaign (fail2ban bans it); one login failing from everywhere is a targeted account: give it a new password.",
  },
  imapAuthFailures: {
    metric: { filter: "imapAuthFailures" },
    ...COUNT_IN_LOGS,
    period: FIVE_MINUTES,
    threshold: 50,
    thresholdRange: count(100000),
    condition: (n) => `${n} or more failed IMAP/POP3 logins in 5 minutes`,
    action:
      "Password guessing, or a phone with an old password. The matching lines name the logins and addresses; give a targeted login a new password or app passwords.",
  },
  rateLimited: {
    metric: { filter: "rateLimited" },
    ...COUNT_IN_LOGS,
    period: FIVE_MINUTES,
    threshold: 1,
    thresholdRange: count(100000),
    condition: (n) => `${n} or more submissions refused by the sending limits in 5 minutes`,
    action:
      "A login reached its hourly sending limit: possibly a stolen password sending spam. The matching lines name the login; if the mail is not its owner's, disable the mailbox or change its password, else raise its sendingLimits.",
  },
  remoteBlocklisted: {
    metric: { filter: "remoteBlocklisted" },
    ...COUNT_IN_LOGS,
    period: FIVE_MINUTES,
    threshold: 1,
    thresholdRange: count(100000),
    condition: (n) => `${n} or more deliveries refused because a blocklist lists the host`,
    action:
      "Run `mailstack check` (or look the address up at spamhaus.org) to see which list; find what sent spam (rateLimited, bounces), stop it, then ask the list for removal.",
  },
  dkimSigningErrors: {
    metric: { filter: "dkimSigningErrors" },
    ...COUNT_IN_LOGS,
    period: FIVE_MINUTES,
    threshold: 1,
    thresholdRange: count(100000),
    condition: (n) => `${n} or more outbound messages rspamd could not DKIM-sign`,
    action:
      "Unsigned mail fails DMARC at recipients. Usually the key file is missing or unreadable: read the matching lines, then the runtime sync's journal (`journalctl -u mailstack-sync`).",
  },
  unitFailures: {
    metric: { filter: "unitFailures" },
    ...COUNT_IN_LOGS,
    period: FIVE_MINUTES,
    threshold: 1,
    thresholdRange: count(100000),
    condition: (n) => `${n} or more failed runs of the host's own units`,
    action: "The matching lines name the unit (backup, certificate, sync); read its journal on the host: `journalctl -u <unit>`.",
  },
  rejectedMail: {
    metric: { filter: "rejected" },
    ...COUNT_IN_LOGS,
    period: ONE_HOUR,
    threshold: 500,
    thresholdRange: count(1000000),
    condition: (n) => `${n} or more messages refused in an hour`,
    action: "A spam wave, or a check refusing real mail (DNS trouble, a wrong setting): the matching lines give the reasons.",
  },
  bouncedMail: {
    metric: { filter: "bounced" },
    ...COUNT_IN_LOGS,
    period: ONE_HOUR,
    threshold: 20,
    thresholdRange: count(100000),
    condition: (n) => `${n} or more messages bounced in an hour`,
    action: "Mail to addresses that do not exist is a sign of a login sending spam: the matching lines show the senders and the remote replies.",
  },
  deferredQueue: {
    metric: { host: "queueDeferred" },
    statistic: "Minimum",
    period: FIVE_MINUTES,
    evaluationPeriods: 6,
    threshold: 20,
    thresholdRange: count(1000000),
    comparison: "GreaterThanOrEqualToThreshold",
    treatMissingData: "notBreaching",
    condition: (n) => `${n} or more messages waiting for a retry for 30 minutes`,
    action:
      "Outbound mail is not leaving: the port-25 limit not lifted yet, a blocklist (see remoteBlocklisted), or a recipient's server down. `postqueue -p` on the host shows each message's reason; Postfix bounces what is still queued after two days.",
  },
  activeQueueStuck: {
    metric: { host: "queueActive" },
    statistic: "Minimum",
    period: FIVE_MINUTES,
    evaluationPeriods: 6,
    threshold: 10,
    thresholdRange: count(1000000),
    comparison: "GreaterThanOrEqualToThreshold",
    treatMissingData: "notBreaching",
    condition: (n) => `${n} or more messages in the active queue for 30 minutes`,
    action: "Delivery is stuck: check `systemctl status postfix dovecot rspamd redis-server` and free space on the data volume; `postqueue -p` shows the messages.",
  },
  dataVolumeFull: {
    metric: { host: "dataVolumeUsed" },
    statistic: "Maximum",
    period: FIVE_MINUTES,
    evaluationPeriods: 1,
    threshold: 80,
    thresholdRange: { min: 1, max: 99, integer: false },
    comparison: "GreaterThanThreshold",
    treatMissingData: "notBreaching",
    condition: (n) => `the data volume is more than ${n}% full`,
    action: "Raise dataVolumeGiB and run `pulumi up` (the filesystem grows at the next boot or by hand), or lower mailbox quotas; a full volume stops mail delivery.",
  },
  backupAge: {
    metric: { host: "hoursSinceBackup" },
    statistic: "Maximum",
    period: FIVE_MINUTES,
    evaluationPeriods: 1,
    threshold: 26,
    // Not tied to backupSchedule: a schedule more often than daily may want a lower threshold.
    thresholdRange: { min: 1, max: 8760, integer: false },
    comparison: "GreaterThanThreshold",
    treatMissingData: "notBreaching",
    condition: (n) => `no successful offsite backup for more than ${n} hours`,
    action: "Read `journalctl -u mailstack-backup` on the host (credentials, bucket policy, a full disk); run one by hand with `sudo systemctl start mailstack-backup`.",
  },
  certificateExpiry: {
    metric: { host: "certificateDaysLeft" },
    statistic: "Minimum",
    period: FIVE_MINUTES,
    evaluationPeriods: 1,
    threshold: 14,
    // Below 30: the host renews when 30 days are left, so a higher threshold fires every renewal.
    thresholdRange: { min: 1, max: 29, integer: true },
    comparison: "LessThanThreshold",
    treatMissingData: "notBreaching",
    condition: (n) => `the TLS certificate expires in less than ${n} days`,
    action: "Renewal has been failing: read `journalctl -u mailstack-certificate` (DNS not pointing at the host, port 80 closed, Let's Encrypt limits) and retry with `sudo systemctl start mailstack-certificate`.",
  },
  bundleNotApplied: {
    metric: { host: "bundleApplied" },
    statistic: "Maximum",
    period: FIVE_MINUTES,
    // An update takes about two minutes to apply; three periods leave room for it.
    evaluationPeriods: 3,
    threshold: 1,
    thresholdRange: { min: 1, max: 1, integer: true },
    comparison: "LessThanThreshold",
    treatMissingData: "notBreaching",
    condition: () => "the host has not applied the host bundle the stack names for 15 minutes",
    action: "A checker refused the new configuration, or applying it failed and was rolled back. Read `<parameterPath>/status/host-bundle` (its reason) and `journalctl -u mailstack-sync` on the host.",
  },
  hostSilent: {
    metric: { host: "bundleApplied" },
    statistic: "SampleCount",
    period: FIVE_MINUTES,
    evaluationPeriods: 3,
    threshold: 1,
    thresholdRange: { min: 1, max: 1, integer: true },
    comparison: "LessThanThreshold",
    treatMissingData: "breaching",
    condition: () => "the host has reported no metrics for 15 minutes",
    action:
      "The host is down, cannot reach CloudWatch, or its metrics timer fails. Check the instance in the EC2 console (the status-check alarms), then `journalctl -u mailstack-metrics` through `aws ssm start-session`.",
  },
};

/** One alarm's setting in `alarms`: `false` turns it off, `true` keeps its defaults, an object moves its threshold. */
export type AlarmSetting =
  | boolean
  | {
      /** The alarm's threshold instead of its default, within its `thresholdRange`. */
      threshold?: number;
    };

/** The configuration's `alarms`: settings of the alarms to change, by key; the others keep their defaults. */
export type AlarmSettings = { [K in MonitoringAlarmKey]?: AlarmSetting };

/** An alarm in force: its definition, and the threshold from its default or its setting. */
export interface ActiveAlarm {
  /** Its key in {@link MONITORING_ALARMS}. */
  readonly key: MonitoringAlarmKey;
  /** Its definition. */
  readonly alarm: MonitoringAlarm;
  /** The threshold in force. */
  readonly threshold: number;
}

/** The alarms in force with these settings, in the table's order. */
export function activeAlarms(settings: AlarmSettings = {}): ActiveAlarm[] {
  return (Object.entries(MONITORING_ALARMS) as [MonitoringAlarmKey, MonitoringAlarm][]).flatMap(([key, alarm]) => {
    const setting = settings[key];
    if (setting === false) return [];
    return [{ key, alarm, threshold: (typeof setting === "object" ? setting.threshold : undefined) ?? alarm.threshold }];
  });
}

/** What is wrong with a threshold for an alarm, with the accepted range; undefined when nothing. */
export function thresholdProblem(key: MonitoringAlarmKey, value: unknown): string | undefined {
  const { min, max, integer } = MONITORING_ALARMS[key].thresholdRange;
  const range = min === max ? `can only be ${min}` : `must be ${integer ? "a whole number" : "a number"} from ${min} to ${max}`;
  if (typeof value !== "number" || !Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
    return `${range}, not ${JSON.stringify(value)}${min === max ? ` (this alarm has no other threshold; write false to turn it off)` : ""}`;
  }
  return undefined;
}

/** CloudWatch's limit on an alarm's description. */
const ALARM_DESCRIPTION_MAX = 1024;

/**
 * An alarm's description: the host, what happened, what to do and, for a filter's alarm, the
 * pattern that finds the matching lines in the log group (from the table, so it follows the
 * filter), within CloudWatch's limit.
 */
export function alarmDescription(active: ActiveAlarm, hostname: string): string {
  const { metric } = active.alarm;
  const lines = "filter" in metric ? ` Matching lines: filter the log group with ${filterPattern(LOG_METRIC_FILTERS[metric.filter])}.` : "";
  const text = `${hostname}: ${active.alarm.condition(active.threshold)}. ${active.alarm.action}${lines}`;
  return text.length > ALARM_DESCRIPTION_MAX ? `${text.slice(0, ALARM_DESCRIPTION_MAX - 1)}…` : text;
}

/** A graph of the dashboard: its title and the metrics it draws, each with its statistic. */
interface Graph {
  readonly title: string;
  readonly metrics: readonly { readonly metric: AlarmMetric; readonly stat: "Sum" | "Maximum" | "Minimum"; readonly label: string }[];
  readonly period: number;
}

const filterSum = (filter: LogMetricFilterKey, label: string) => ({ metric: { filter }, stat: "Sum", label }) as const;
const hostValue = (host: HostMetricKey, stat: "Maximum" | "Minimum", label: string) => ({ metric: { host }, stat, label }) as const;

/** The dashboard's graphs, two to a row. */
const DASHBOARD_GRAPHS: readonly Graph[] = [
  { title: "Queue", period: FIVE_MINUTES, metrics: [hostValue("queueActive", "Maximum", "active"), hostValue("queueDeferred", "Maximum", "deferred")] },
  { title: "Failed logins", period: FIVE_MINUTES, metrics: [filterSum("smtpAuthFailures", "SMTP"), filterSum("imapAuthFailures", "IMAP/POP3")] },
  {
    title: "Refused, deferred, bounced",
    period: ONE_HOUR,
    metrics: [
      filterSum("rejected", "refused"),
      filterSum("deferred", "deferred deliveries"),
      filterSum("bounced", "bounced"),
      filterSum("remoteBlocklisted", "refused by a blocklist"),
    ],
  },
  { title: "Sending limits reached", period: FIVE_MINUTES, metrics: [filterSum("rateLimited", "refusals")] },
  { title: "Data volume used (%)", period: FIVE_MINUTES, metrics: [hostValue("dataVolumeUsed", "Maximum", "used")] },
  { title: "Hours since the last backup", period: FIVE_MINUTES, metrics: [hostValue("hoursSinceBackup", "Maximum", "hours")] },
  { title: "Certificate days left", period: FIVE_MINUTES, metrics: [hostValue("certificateDaysLeft", "Minimum", "days")] },
  {
    title: "Host errors",
    period: FIVE_MINUTES,
    metrics: [filterSum("unitFailures", "failed units"), filterSum("dkimSigningErrors", "DKIM signing errors"), hostValue("bundleApplied", "Minimum", "bundle applied (1)")],
  },
];

/**
 * The CloudWatch dashboard body (its JSON) of a host: a graph per main figure, each metric named
 * exactly as the host or a filter publishes it.
 */
export function dashboardBody(hostname: string, region: string): string {
  const widgets = DASHBOARD_GRAPHS.map((graph, i) => ({
    type: "metric",
    x: (i % 2) * 12,
    y: Math.floor(i / 2) * 6,
    width: 12,
    height: 6,
    properties: {
      title: graph.title,
      region,
      view: "timeSeries",
      stacked: false,
      period: graph.period,
      metrics: graph.metrics.map(({ metric, stat, label }) => {
        const id = metricId(metric, hostname);
        return [id.namespace, id.metricName, ...Object.entries(id.dimensions).flat(), { stat, label }];
      }),
    },
  }));
  return JSON.stringify({ widgets });
}
