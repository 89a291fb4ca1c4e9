// MailMonitoring: the log group, a metric filter per LOG_METRIC_FILTERS entry, the alarms of
// MONITORING_ALARMS on the alert topic, the dashboard, and the host role's right to report.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  filterMetricNamespace,
  filterPattern,
  HOST_METRICS,
  LOG_METRIC_FILTERS,
  logGroupName,
  METRIC_DIMENSION,
  METRIC_NAMESPACE,
  metricId,
  MONITORING_ALARMS,
  type MonitoringAlarmKey,
} from "@mailstack/core";
import { MailMonitoring, MailStack, MailStackConfigError, readStackConfig } from "@mailstack/pulumi";
import * as pulumi from "@pulumi/pulumi";
import { fullConfig, minimalConfig } from "../support/fixtures";
import { type RecordedResource, type Run, runFailing, runProgram } from "../support/harness";
import { stackArgs } from "./args";
import { allows, one, statements, T } from "./helpers";

const LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup";
const FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter";
const ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm";
const DASHBOARD = "aws:cloudwatch/dashboard:Dashboard";
const TOPIC = "aws:sns/topic:Topic";
const HOST = "mail.example.com";
const PATH = "/mailstack/mailstack/test/mail";

let full: Run;
let changed: Run;
let silent: Run;
let outputs: { parameterPath?: string; logGroupName?: string } = {};
beforeAll(async () => {
  full = await runProgram(() => {
    const mail = new MailStack("mail", stackArgs(fullConfig()));
    return { parameterPath: mail.parameterPath, logGroupName: mail.logGroupName };
  });
  outputs = full.outputs;
  changed = await runProgram(() => {
    new MailStack("mail", stackArgs({ ...fullConfig(), logRetentionDays: 365, alarms: { backupAge: { threshold: 50 }, rejectedMail: false, hostSilent: true } }));
  });
  silent = await runProgram(() => {
    new MailStack("mail", stackArgs(minimalConfig()));
  });
});

/** The alarms on mailstack's metrics, by the key in their name (the status-check alarms are MailAlerts'). */
function monitoringAlarms(run: Run): Record<string, RecordedResource> {
  const prefix = `mailstack ${HOST} `;
  return Object.fromEntries(run.ofType(ALARM).filter((a) => a.inputs.namespace !== "AWS/EC2").map((a) => [String(a.inputs.name).slice(prefix.length), a]));
}

/** Every metric a filter publishes, as `namespace|name`. */
function filterMetrics(run: Run): Set<string> {
  return new Set(run.ofType(FILTER).map((f) => `${f.inputs.metricTransformation.namespace}|${f.inputs.metricTransformation.name}`));
}

describe("log group and filters", () => {
  test("the log group is named after the parameter path, keeps 30 days by default and the configured days otherwise", () => {
    const group = one(full, LOG_GROUP);
    expect(group.inputs.name).toBe(logGroupName(PATH));
    expect(group.inputs.name).toBe(PATH);
    expect(group.inputs.retentionInDays).toBe(30);
    expect(one(changed, LOG_GROUP).inputs.retentionInDays).toBe(365);
    expect(group.inputs.tags).toMatchObject({ "mailstack:stack": "mailstack/test" });
  });

  test("MailStack exposes the log group's name and the parameter path, for the stack outputs", () => {
    expect(outputs).toEqual({ parameterPath: PATH, logGroupName: PATH });
  });

  test("one filter per table entry, on the log group, with the pattern of its terms", () => {
    const filters = full.ofType(FILTER);
    expect(filters.map((f) => f.inputs.name).sort()).toEqual(Object.values(LOG_METRIC_FILTERS).map((f) => f.metric).sort());
    for (const filter of Object.values(LOG_METRIC_FILTERS)) {
      const resource = filters.find((f) => f.inputs.name === filter.metric)!;
      expect(resource.inputs.logGroupName).toBe(PATH);
      // Each term quoted, all of them required: what filterMatches assumes of CloudWatch.
      expect(resource.inputs.pattern).toBe(filter.terms.map((t) => `"${t}"`).join(" "));
      expect(resource.inputs.metricTransformation).toEqual({ name: filter.metric, namespace: `${METRIC_NAMESPACE}/${HOST}`, value: "1", defaultValue: "0", unit: "Count" });
    }
  });

  test("filters exist without alertEmail too, and their names are stable", () => {
    expect(silent.ofType(FILTER)).toHaveLength(Object.keys(LOG_METRIC_FILTERS).length);
    expect(full.named("mail-monitoring-filter-smtp-auth-failures").inputs.name).toBe(LOG_METRIC_FILTERS.smtpAuthFailures.metric);
  });
});

describe("alarms", () => {
  test("every alarm of the table, on the alert topic, with the table's metric, statistic, period and threshold", () => {
    const topicArn = one(full, TOPIC).state.arn;
    expect(typeof topicArn).toBe("string");
    const alarms = monitoringAlarms(full);
    expect(Object.keys(alarms).sort()).toEqual(Object.keys(MONITORING_ALARMS).sort());
    const published = filterMetrics(full);
    const hostNames = new Set(Object.values(HOST_METRICS).map((m) => m.name));
    for (const [key, alarm] of Object.entries(MONITORING_ALARMS)) {
      const inputs = alarms[key].inputs;
      const metric = metricId(alarm.metric, HOST);
      expect({ key, ...inputs }).toMatchObject({
        key,
        namespace: metric.namespace,
        metricName: metric.metricName,
        statistic: alarm.statistic,
        period: alarm.period,
        evaluationPeriods: alarm.evaluationPeriods,
        threshold: alarm.threshold,
        comparisonOperator: alarm.comparison,
        treatMissingData: alarm.treatMissingData,
        alarmActions: [topicArn],
        okActions: [topicArn],
      });
      // Each alarm watches a metric that exists: one the host pushes, with the Host dimension, or one a filter publishes.
      if ("host" in alarm.metric) {
        expect({ key, namespace: inputs.namespace, dimensions: inputs.dimensions, known: hostNames.has(inputs.metricName) }).toEqual({
          key,
          namespace: METRIC_NAMESPACE,
          dimensions: { [METRIC_DIMENSION]: HOST },
          known: true,
        });
      } else {
        expect({ key, dimensions: inputs.dimensions, published: published.has(`${inputs.namespace}|${inputs.metricName}`) }).toEqual({ key, dimensions: undefined, published: true });
        // How to find the lines it counted, from the filter itself.
        expect(inputs.alarmDescription).toContain(filterPattern(LOG_METRIC_FILTERS[alarm.metric.filter]));
      }
      expect(inputs.alarmDescription).toContain(`${HOST}: `);
      expect(inputs.alarmDescription).toContain(alarm.action);
      expect(inputs.alarmDescription.length).toBeLessThanOrEqual(1024);
    }
  });

  test("the defaults an operator asked for", () => {
    const alarms = monitoringAlarms(full);
    const summary = (key: MonitoringAlarmKey) => {
      const i = alarms[key].inputs;
      return [i.metricName, i.statistic, i.comparisonOperator, i.threshold, i.period * i.evaluationPeriods, i.treatMissingData];
    };
    expect(summary("dataVolumeFull")).toEqual(["DataVolumeUsedPercent", "Maximum", "GreaterThanThreshold", 80, 300, "notBreaching"]);
    expect(summary("backupAge")).toEqual(["HoursSinceBackup", "Maximum", "GreaterThanThreshold", 26, 300, "notBreaching"]);
    expect(summary("certificateExpiry")).toEqual(["CertificateDaysLeft", "Minimum", "LessThanThreshold", 14, 300, "notBreaching"]);
    expect(summary("bundleNotApplied")).toEqual(["HostBundleApplied", "Maximum", "LessThanThreshold", 1, 900, "notBreaching"]);
    // The host not reporting at all: no data is what breaches.
    expect(summary("hostSilent")).toEqual(["HostBundleApplied", "SampleCount", "LessThanThreshold", 1, 900, "breaching"]);
    expect(summary("rateLimited")).toEqual(["RateLimitRefusals", "Sum", "GreaterThanOrEqualToThreshold", 1, 300, "notBreaching"]);
    expect(summary("smtpAuthFailures")[0]).toBe("SmtpAuthFailures");
    expect(summary("imapAuthFailures")[0]).toBe("ImapAuthFailures");
    expect(summary("remoteBlocklisted")[0]).toBe("RemoteBlocklistRefusals");
    expect(summary("dkimSigningErrors")[0]).toBe("DkimSigningErrors");
    expect(summary("unitFailures")[0]).toBe("HostUnitFailures");
    expect(summary("deferredQueue").slice(0, 2)).toEqual(["QueueDeferred", "Minimum"]);
    expect(summary("activeQueueStuck").slice(0, 2)).toEqual(["QueueActive", "Minimum"]);
  });

  test("config moves a threshold and turns an alarm off; the others keep their defaults", () => {
    const alarms = monitoringAlarms(changed);
    expect(alarms.backupAge.inputs.threshold).toBe(50);
    expect(alarms.backupAge.inputs.alarmDescription).toContain("more than 50 hours");
    expect(alarms.rejectedMail).toBeUndefined();
    expect(Object.keys(alarms).sort()).toEqual(Object.keys(MONITORING_ALARMS).filter((k) => k !== "rejectedMail").sort());
    expect(alarms.certificateExpiry.inputs.threshold).toBe(MONITORING_ALARMS.certificateExpiry.threshold);
  });

  test("without alertEmail there is no alarm at all, but the log group, filters, dashboard and policy are there", () => {
    expect(silent.ofType(ALARM)).toEqual([]);
    expect(silent.ofType(LOG_GROUP)).toHaveLength(1);
    expect(silent.ofType(DASHBOARD)).toHaveLength(1);
    expect(silent.named("mail-monitoring-host-telemetry").type).toBe(T.rolePolicy);
  });
});

describe("dashboard", () => {
  type Widget = { type: string; properties: { region: string; title: string; metrics: unknown[][] } };
  const widgets = (run: Run): Widget[] => JSON.parse(one(run, DASHBOARD).inputs.dashboardBody).widgets;

  test("every graph draws only metrics that exist, with the right namespace and dimensions, in the stack's region", () => {
    const published = filterMetrics(full);
    const hostNames = new Set(Object.values(HOST_METRICS).map((m) => m.name));
    const drawn: string[] = [];
    for (const widget of widgets(full)) {
      expect(widget.type).toBe("metric");
      expect(widget.properties.region).toBe("us-east-1");
      for (const line of widget.properties.metrics) {
        const [namespace, name, ...rest] = line as [string, string, ...unknown[]];
        const options = rest.pop() as { stat: string; label: string };
        expect(["Sum", "Maximum", "Minimum"]).toContain(options.stat);
        if (namespace === METRIC_NAMESPACE) {
          expect({ name, known: hostNames.has(name), dimensions: rest }).toEqual({ name, known: true, dimensions: [METRIC_DIMENSION, HOST] });
        } else {
          expect({ name, published: published.has(`${namespace}|${name}`), dimensions: rest }).toEqual({ name, published: true, dimensions: [] });
        }
        drawn.push(name);
      }
    }
    // The main figures.
    for (const figure of [
      "QueueActive",
      "QueueDeferred",
      "SmtpAuthFailures",
      "ImapAuthFailures",
      "RejectedMail",
      "DeferredDeliveries",
      "BouncedMail",
      "RateLimitRefusals",
      "DataVolumeUsedPercent",
      "HoursSinceBackup",
      "CertificateDaysLeft",
    ]) {
      expect(drawn).toContain(figure);
    }
  });

  test("its name is the host's, in the characters CloudWatch allows", () => {
    expect(one(full, DASHBOARD).inputs.dashboardName).toBe("mailstack-mail-example-com");
  });
});

describe("the host role's permissions", () => {
  test("exactly: write log streams of its own group, push metrics in the mailstack namespace", () => {
    const policy = full.named("mail-monitoring-host-telemetry");
    const role = full.named("mail-host-role");
    expect(policy.inputs.role).toBe(role.state.name);
    expect(statements(policy.inputs.policy)).toEqual([
      {
        Sid: "ShipLogs",
        Effect: "Allow",
        Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
        Resource: `arn:aws:logs:us-east-1:123456789012:log-group:${PATH}:log-stream:*`,
      },
      {
        Sid: "PushMetrics",
        Effect: "Allow",
        Action: "cloudwatch:PutMetricData",
        Resource: "*",
        Condition: { StringEquals: { "cloudwatch:namespace": METRIC_NAMESPACE } },
      },
    ]);
  });

  test("and nothing more", () => {
    const all = statements(full.named("mail-monitoring-host-telemetry").inputs.policy);
    const stream = `arn:aws:logs:us-east-1:123456789012:log-group:${PATH}:log-stream:i-0123`;
    expect(allows(all, "logs:PutLogEvents", stream)).toBe(true);
    expect(allows(all, "logs:PutLogEvents", "arn:aws:logs:us-east-1:123456789012:log-group:/other/stack:log-stream:x")).toBe(false);
    expect(allows(all, "logs:CreateLogGroup", `arn:aws:logs:us-east-1:123456789012:log-group:${PATH}`)).toBe(false);
    expect(allows(all, "logs:DeleteLogStream", stream)).toBe(false);
    expect(allows(all, "cloudwatch:PutMetricData", "*", { "cloudwatch:namespace": METRIC_NAMESPACE })).toBe(true);
    // Not the filters' namespaces (CloudWatch Logs writes those), nor AWS's.
    expect(allows(all, "cloudwatch:PutMetricData", "*", { "cloudwatch:namespace": filterMetricNamespace(HOST) })).toBe(false);
    expect(allows(all, "cloudwatch:PutMetricData", "*", { "cloudwatch:namespace": "AWS/EC2" })).toBe(false);
    expect(allows(all, "cloudwatch:PutMetricData", "*")).toBe(false);
    expect(allows(all, "cloudwatch:PutMetricAlarm", "*", { "cloudwatch:namespace": METRIC_NAMESPACE })).toBe(false);
  });
});

describe("component tree", () => {
  test("every monitoring resource is a child of MailMonitoring under the MailStack", () => {
    const component = one(full, "mailstack:aws:MailMonitoring");
    expect(component.parent).toBe(one(full, T.mailStack).urn);
    const children = [LOG_GROUP, FILTER, DASHBOARD].flatMap((type) => full.ofType(type));
    children.push(...Object.values(monitoringAlarms(full)), full.named("mail-monitoring-host-telemetry"));
    for (const child of children) expect({ name: child.name, parent: child.parent }).toEqual({ name: child.name, parent: component.urn });
  });
});

describe("refused before any resource", () => {
  const onlyTheStack = (run: Run) => expect(run.record.resources.map((r) => r.type)).toEqual([T.stack]);

  test("a bad retention, an unknown alarm and a bad threshold are reported together by their paths", async () => {
    const { errors, run } = await runFailing([
      () =>
        new MailStack(
          "mail",
          stackArgs({
            ...fullConfig(),
            logRetentionDays: 45,
            alarms: { backupAg: false, certificateExpiry: { threshold: 40 } } as never,
          }),
        ),
      () => new MailStack("mail", stackArgs({ ...minimalConfig(), alarms: { rejectedMail: false } })),
    ]);
    const [bad, withoutAddress] = errors as MailStackConfigError[];
    expect(bad).toBeInstanceOf(MailStackConfigError);
    expect(bad.issues.map((i) => i.path).sort()).toEqual(["alarms.backupAg", "alarms.certificateExpiry.threshold", "logRetentionDays"]);
    expect(bad.message).toContain('alarms.backupAg: is not a known field. Did you mean "backupAge"?');
    expect(bad.message).toContain("alarms.certificateExpiry.threshold: must be a whole number from 1 to 29, not 40");
    expect(bad.message).toContain("logRetentionDays: must be one of 1, 3, 5, 7, 14, 30, 60");
    expect(withoutAddress.issues.map((i) => i.path)).toEqual(["alarms"]);
    onlyTheStack(run);
  });

  test("from stack config, with the same paths", async () => {
    const mailboxes = JSON.stringify(minimalConfig().mailboxes);
    const { errors, run } = await runFailing(
      [() => new MailStack("mail", readStackConfig())],
      {
        "mailstack:domain": "example.com",
        "mailstack:mailboxes": mailboxes,
        "mailstack:alertEmail": "ops@example.net",
        "mailstack:logRetentionDays": "31",
        "mailstack:alarms": JSON.stringify({ dataVolumeFull: { threshold: 101 } }),
      },
    );
    expect((errors[0] as MailStackConfigError).issues.map((i) => i.path).sort()).toEqual(["alarms.dataVolumeFull.threshold", "logRetentionDays"]);
    onlyTheStack(run);
  });

  test("MailMonitoring on its own refuses what CloudWatch would, and settings with no topic", async () => {
    const base = { hostname: HOST, parameterPath: PATH, hostRoleName: "role" };
    const { errors, run } = await runFailing([
      () => new MailMonitoring("m", { ...base, logRetentionDays: 45 }),
      () => new MailMonitoring("m", { ...base, alarms: { backupAge: { threshold: 50 } } }),
      () => new MailMonitoring("m", { ...base, alarmTopicArn: "arn:aws:sns:us-east-1:123456789012:t", alarms: { dataVolumeFull: { threshold: 0 } } }),
    ]);
    expect(errors.map((e) => pulumi.ResourceError.isInstance(e))).toEqual([true, true, true]);
    expect((errors[0] as Error).message).toContain("MailMonitoring m: logRetentionDays: 45 is not a retention CloudWatch Logs accepts; use one of 1, 3,");
    expect((errors[1] as Error).message).toContain("MailMonitoring m: alarms: changes alarms, but without alarmTopicArn none are created");
    expect((errors[2] as Error).message).toContain("MailMonitoring m: alarms.dataVolumeFull.threshold: must be a number from 1 to 99, not 0");
    onlyTheStack(run);
  });
});

test("stack config carries the retention and the alarm settings through readStackConfig", async () => {
  const run = await runProgram(
    () => {
      new MailStack("mail", readStackConfig());
    },
    {
      config: {
        "mailstack:domain": "example.com",
        "mailstack:mailboxes": JSON.stringify(minimalConfig().mailboxes),
        "mailstack:alertEmail": "ops@example.net",
        "mailstack:logRetentionDays": "90",
        "mailstack:alarms": JSON.stringify({ bouncedMail: false, smtpAuthFailures: { threshold: 200 } }),
      },
      secretKeys: ["mailstack:mailboxes"],
    },
  );
  expect(one(run, LOG_GROUP).inputs.retentionInDays).toBe(90);
  const alarms = monitoringAlarms(run);
  expect(alarms.bouncedMail).toBeUndefined();
  expect(alarms.smtpAuthFailures.inputs.threshold).toBe(200);
});

describe("docs/operations.md agrees with the tables", () => {
  const all = readFileSync(join(__dirname, "..", "..", "docs", "operations.md"), "utf8");
  const section = all.slice(all.indexOf("\n## Monitoring: log filters, alarms and dashboard\n"), all.indexOf("\n## Checking the service"));

  test("a row per alarm, with its default condition and its range", () => {
    const rows = [...section.matchAll(/^\| `(\w+)` \| ([^|]+) \| ([^|]+) \|/gm)].filter((m) => m[1] in MONITORING_ALARMS);
    expect(rows.map((m) => m[1]).sort()).toEqual(Object.keys(MONITORING_ALARMS).sort());
    for (const [, key, condition, range] of rows) {
      const alarm = MONITORING_ALARMS[key as MonitoringAlarmKey];
      const { min, max } = alarm.thresholdRange;
      expect({ key, condition: condition.trim(), range: range.trim() }).toEqual({
        key,
        condition: `${alarm.condition(alarm.threshold)} (\`${metricId(alarm.metric, HOST).metricName}\`, ${alarm.statistic})`,
        range: min === max ? "none" : `${min}–${max}`,
      });
    }
  });

  test("a row per log filter's metric", () => {
    for (const filter of Object.values(LOG_METRIC_FILTERS)) expect(section).toMatch(new RegExp(`^\\| \`${filter.metric}\` \\|`, "m"));
  });
});
