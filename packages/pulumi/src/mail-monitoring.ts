import {
  activeAlarms,
  alarmDescription,
  alarmSettingsIssues,
  type AlarmSettings,
  dashboardBody,
  DEFAULTS,
  filterMetricNamespace,
  filterPattern,
  LOG_METRIC_FILTERS,
  LOG_RETENTION_DAYS,
  type LogMetricFilter,
  type LogMetricFilterKey,
  logGroupName,
  METRIC_NAMESPACE,
  metricId,
  type MonitoringAlarmKey,
} from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";
import * as cloudwatch from "@pulumi/aws/cloudwatch";
import { getCallerIdentityOutput } from "@pulumi/aws/getCallerIdentity";
import { getPartitionOutput } from "@pulumi/aws/getPartition";
import { getRegionOutput } from "@pulumi/aws/getRegion";
import * as iam from "@pulumi/aws/iam";

/** Arguments of {@link MailMonitoring}. */
export interface MailMonitoringArgs {
  /**
   * The mail host's name: the value of the `Host` dimension of the metrics it pushes, and part
   * of the namespace of the log filters' metrics (see `filterMetricNamespace`).
   */
  readonly hostname: string;
  /** The stack's SSM parameter path; the log group is named after it (`logGroupName`), so it is unique per stack. */
  readonly parameterPath: string;
  /**
   * Name of the host's IAM role (MailHost's `role`). It is allowed to write log streams of
   * this log group and to push metrics in the `mailstack` namespace, nothing more.
   */
  readonly hostRoleName: pulumi.Input<string>;
  /**
   * Days the log group keeps its events, one of the periods CloudWatch Logs accepts
   * (`LOG_RETENTION_DAYS`). Plain, so that a value CloudWatch would refuse stops the program
   * before any resource. Default 30.
   */
  readonly logRetentionDays?: number;
  /**
   * The SNS topic every alarm notifies, on alarm and back to OK (MailAlerts' `topicArn`).
   * Default none: no alarm is created, as there is no one to tell; the log group, the
   * filters, the dashboard and the host's permissions still are.
   */
  readonly alarmTopicArn?: pulumi.Input<string>;
  /**
   * Alarms to turn off (`false`) or give another threshold (`{ threshold: N }`), by key of
   * `MONITORING_ALARMS`. Refused without alarmTopicArn. Default: every alarm at its own threshold.
   */
  readonly alarms?: AlarmSettings;
  /** Tags for the log group and the alarms (the other resources take none). Default none. */
  readonly tags?: Readonly<Record<string, string>>;
}

/**
 * What the stack watches from outside the host: the log group the host ships its journal to,
 * a metric filter per `LOG_METRIC_FILTERS` entry, alarms on those and on the metrics the host
 * pushes (`MONITORING_ALARMS`), a dashboard of the main figures, and the host role's right to
 * write there.
 */
export class MailMonitoring extends pulumi.ComponentResource {
  /** The host's log group, named after the parameter path. */
  readonly logGroup: cloudwatch.LogGroup;
  /** The log group's name, e.g. `/mailstack/mailstack/prod/mail`. */
  readonly logGroupName: pulumi.Output<string>;
  /** The metric filters, by key of `LOG_METRIC_FILTERS`. */
  readonly filters: Record<LogMetricFilterKey, cloudwatch.LogMetricFilter>;
  /** The alarms, by key of `MONITORING_ALARMS`; empty without alarmTopicArn, without those turned off. */
  readonly alarms: Partial<Record<MonitoringAlarmKey, cloudwatch.MetricAlarm>> = {};
  /** The CloudWatch dashboard of the host's main figures. */
  readonly dashboard: cloudwatch.Dashboard;

  constructor(name: string, args: MailMonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    const retentionDays = args.logRetentionDays ?? DEFAULTS.logRetentionDays;
    const problems: string[] = [];
    if (!(LOG_RETENTION_DAYS as readonly number[]).includes(retentionDays)) {
      problems.push(`logRetentionDays: ${JSON.stringify(retentionDays)} is not a retention CloudWatch Logs accepts; use one of ${LOG_RETENTION_DAYS.join(", ")}`);
    }
    for (const issue of alarmSettingsIssues(args.alarms)) problems.push(`${issue.path}: ${issue.message}`);
    if (args.alarms !== undefined && args.alarmTopicArn === undefined) problems.push("alarms: changes alarms, but without alarmTopicArn none are created; give the topic, or leave alarms out");
    // Before super(): a refused component is not registered at all; the message names it.
    if (problems.length > 0) throw new pulumi.ResourceError(`MailMonitoring ${name}: ${problems.join("; ")}`, undefined);
    super("mailstack:aws:MailMonitoring", name, {}, opts);
    const parent = { parent: this };
    const { hostname } = args;

    this.logGroup = new cloudwatch.LogGroup(`${name}-logs`, { name: logGroupName(args.parameterPath), retentionInDays: retentionDays, tags: args.tags }, parent);
    this.logGroupName = this.logGroup.name;

    const filters: Partial<Record<LogMetricFilterKey, cloudwatch.LogMetricFilter>> = {};
    for (const [key, filter] of Object.entries(LOG_METRIC_FILTERS) as [LogMetricFilterKey, LogMetricFilter][]) {
      filters[key] = new cloudwatch.LogMetricFilter(
        `${name}-filter-${kebab(key)}`,
        {
          name: filter.metric,
          logGroupName: this.logGroup.name,
          pattern: filterPattern(filter),
          // A 0 for every other event: the metric then has data whenever the host ships logs,
          // so a graph shows 0 rather than a gap, and only a silent host leaves gaps.
          metricTransformation: { name: filter.metric, namespace: filterMetricNamespace(hostname), value: "1", defaultValue: "0", unit: "Count" },
        },
        parent,
      );
    }
    this.filters = filters as Record<LogMetricFilterKey, cloudwatch.LogMetricFilter>;

    if (args.alarmTopicArn !== undefined) {
      for (const active of activeAlarms(args.alarms)) {
        const { alarm } = active;
        const metric = metricId(alarm.metric, hostname);
        this.alarms[active.key] = new cloudwatch.MetricAlarm(
          `${name}-alarm-${kebab(active.key)}`,
          {
            // Named, not auto-named: the name is the subject of the e-mail the operator gets.
            name: `mailstack ${hostname} ${active.key}`,
            alarmDescription: alarmDescription(active, hostname),
            namespace: metric.namespace,
            metricName: metric.metricName,
            ...(Object.keys(metric.dimensions).length > 0 ? { dimensions: metric.dimensions } : {}),
            statistic: alarm.statistic,
            period: alarm.period,
            evaluationPeriods: alarm.evaluationPeriods,
            threshold: active.threshold,
            comparisonOperator: alarm.comparison,
            treatMissingData: alarm.treatMissingData,
            alarmActions: [args.alarmTopicArn],
            okActions: [args.alarmTopicArn],
            tags: args.tags,
          },
          parent,
        );
      }
    }

    const region = getRegionOutput({}, parent).region;
    // Dashboard names allow letters, digits, - and _ only.
    this.dashboard = new cloudwatch.Dashboard(
      `${name}-dashboard`,
      { dashboardName: `mailstack-${hostname.replace(/[^A-Za-z0-9_-]/g, "-")}`, dashboardBody: region.apply((r) => dashboardBody(hostname, r)) },
      parent,
    );

    const account = getCallerIdentityOutput({}, parent).accountId;
    const partition = getPartitionOutput({}, parent).partition;
    new iam.RolePolicy(
      `${name}-host-telemetry`,
      {
        role: args.hostRoleName,
        policy: pulumi.all([partition, region, account, this.logGroup.name]).apply(([partition, region, account, group]) =>
          JSON.stringify({
            Version: "2012-10-17",
            Statement: [
              // The group is Pulumi's: the host only adds its streams and events to it.
              {
                Sid: "ShipLogs",
                Effect: "Allow",
                Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
                Resource: `arn:${partition}:logs:${region}:${account}:log-group:${group}:log-stream:*`,
              },
              // PutMetricData has no resource to scope; the namespace condition is its only bound.
              {
                Sid: "PushMetrics",
                Effect: "Allow",
                Action: "cloudwatch:PutMetricData",
                Resource: "*",
                Condition: { StringEquals: { "cloudwatch:namespace": METRIC_NAMESPACE } },
              },
            ],
          }),
        ),
      },
      parent,
    );

    this.registerOutputs({ logGroupName: this.logGroupName, dashboardName: this.dashboard.dashboardName });
  }
}

/** A table key as a resource name part: `smtpAuthFailures` as `smtp-auth-failures`. */
function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
