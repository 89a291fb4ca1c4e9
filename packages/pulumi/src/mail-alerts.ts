import * as pulumi from "@pulumi/pulumi";
import * as cloudwatch from "@pulumi/aws/cloudwatch";
import { getPartitionOutput } from "@pulumi/aws/getPartition";
import { getRegionOutput } from "@pulumi/aws/getRegion";
import * as sns from "@pulumi/aws/sns";

/** Arguments of {@link MailAlerts}. */
export interface MailAlertsArgs {
  /**
   * Address that receives the alarms, preferably at another provider: a mail host that is
   * down cannot deliver its own alarms. AWS first sends it a confirmation link.
   */
  readonly email: pulumi.Input<string>;
  /** The mail host's instance id; the alarms watch its status checks and act on it. */
  readonly instanceId: pulumi.Input<string>;
  /** Host name, for the topic's display name and the alarms' descriptions. */
  readonly hostname: string;
  /** Tags for the topic and the alarms. Default none. */
  readonly tags?: Readonly<Record<string, string>>;
}

/**
 * Alarms on the mail host's EC2 status checks, e-mailed through an SNS topic. A failed system
 * check (the hardware under the instance) triggers EC2's automatic recovery onto healthy
 * hardware with the same volumes and Elastic IP; a failed instance check (the OS hung)
 * reboots it.
 */
export class MailAlerts extends pulumi.ComponentResource {
  /** The SNS topic the alarms publish to; subscribe further endpoints (or alarms of your own) to it. */
  readonly topic: sns.Topic;
  /** The topic's ARN. */
  readonly topicArn: pulumi.Output<string>;

  constructor(name: string, args: MailAlertsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mailstack:aws:MailAlerts", name, {}, opts);
    const parent = { parent: this };
    // Not encrypted with the AWS-managed SNS key: CloudWatch cannot publish to topics using
    // it, and the alarms carry nothing secret.
    this.topic = new sns.Topic(`${name}-topic`, { displayName: `mailstack ${args.hostname}`, tags: args.tags }, parent);
    new sns.TopicSubscription(`${name}-email`, { topic: this.topic.arn, protocol: "email", endpoint: args.email }, parent);

    const region = getRegionOutput({}, parent).region;
    const partition = getPartitionOutput({}, parent).partition;
    const action = (verb: string) => pulumi.interpolate`arn:${partition}:automate:${region}:ec2:${verb}`;
    const alarm = (key: string, metricName: string, periods: number, automation: pulumi.Output<string>, what: string) =>
      new cloudwatch.MetricAlarm(
        `${name}-${key}`,
        {
          alarmDescription: `${args.hostname}: ${what}`,
          namespace: "AWS/EC2",
          metricName,
          dimensions: { InstanceId: args.instanceId },
          statistic: "Maximum",
          period: 60,
          evaluationPeriods: periods,
          threshold: 1,
          comparisonOperator: "GreaterThanOrEqualToThreshold",
          treatMissingData: "missing",
          alarmActions: [this.topic.arn, automation],
          okActions: [this.topic.arn],
          tags: args.tags,
        },
        parent,
      );
    alarm("system-check", "StatusCheckFailed_System", 2, action("recover"), "the hardware under the instance failed its status check; EC2 is recovering it");
    alarm("instance-check", "StatusCheckFailed_Instance", 3, action("reboot"), "the instance failed its status check; EC2 is rebooting it");

    this.topicArn = this.topic.arn;
    this.registerOutputs({ topicArn: this.topicArn });
  }
}
