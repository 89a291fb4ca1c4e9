// MailStack as a library: the reference deployment, configured from `mailstack:` stack config
// exactly like the reference program, plus resources of your own that build on its outputs.
// They live in a small component of their own, so `pulumi preview` shows them as one unit
// and several mail stacks could each get one.
import { MailStack, readStackConfig } from "@mailstack/pulumi";
import * as cloudwatch from "@pulumi/aws/cloudwatch";
import * as iam from "@pulumi/aws/iam";
import * as sns from "@pulumi/aws/sns";
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";

interface MailExtrasArgs {
  /** The mail stack to watch and extend. */
  mail: MailStack;
  /** Where alarms are sent: an address at another provider, or you learn of an outage by not getting mail. */
  alertEmail: string;
  /** Token of a `google-site-verification=` TXT record on the primary domain. */
  googleSiteVerification?: string;
  /** Name of an existing IAM role (e.g. your administrators') that may read the backups. */
  backupReaderRole?: string;
}

/** An instance health alarm, an extra DNS record and read access to the backups. */
class MailExtras extends pulumi.ComponentResource {
  readonly alarmTopic: sns.Topic;
  readonly statusAlarm: cloudwatch.MetricAlarm;
  readonly siteVerification?: cloudflare.DnsRecord;
  readonly backupReadPolicy?: iam.Policy;

  constructor(name: string, args: MailExtrasArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mailstack-example:extend:MailExtras", name, {}, opts);
    const parent = { parent: this };
    const { mail } = args;

    // Not KMS-encrypted: CloudWatch cannot publish to a topic under the AWS-managed SNS key,
    // and a customer key would need its own key policy. Alarm messages carry no secrets.
    this.alarmTopic = new sns.Topic(`${name}-alarms`, { displayName: `Mail alarms for ${mail.hostname}` }, parent);
    // AWS mails a confirmation link first; nothing is delivered until it is clicked.
    new sns.TopicSubscription(`${name}-alarms-email`, { topic: this.alarmTopic.arn, protocol: "email", endpoint: args.alertEmail }, parent);

    // The host runs with basic monitoring, so EC2 metrics arrive every 5 minutes.
    this.statusAlarm = new cloudwatch.MetricAlarm(
      `${name}-status-check`,
      {
        alarmDescription: `${mail.hostname} failed an EC2 status check (instance or underlying host)`,
        namespace: "AWS/EC2",
        metricName: "StatusCheckFailed",
        dimensions: { InstanceId: mail.instanceId },
        statistic: "Maximum",
        period: 300,
        evaluationPeriods: 2,
        threshold: 1,
        comparisonOperator: "GreaterThanOrEqualToThreshold",
        // A mail host that stops reporting is as good as down. Expect one alarm while the
        // instance is replaced after a host-configuration change.
        treatMissingData: "breaching",
        alarmActions: [this.alarmTopic.arn],
        okActions: [this.alarmTopic.arn],
      },
      parent,
    );

    if (args.googleSiteVerification) {
      const domain = mail.config.domain;
      this.siteVerification = new cloudflare.DnsRecord(
        `${name}-google-site-verification`,
        {
          // The zone MailStack publishes into, whether given by id or looked up by name.
          zoneId: mail.dns.zoneIds[domain],
          name: domain,
          type: "TXT",
          // Cloudflare stores TXT content as quoted strings.
          content: `"google-site-verification=${args.googleSiteVerification}"`,
          ttl: 3600,
          comment: "Google Search Console domain verification",
        },
        parent,
      );
    }

    if (args.backupReaderRole) {
      const bucketArn = mail.backup.bucketArn;
      this.backupReadPolicy = new iam.Policy(
        `${name}-backup-read`,
        {
          description: `Read the mail backups of ${mail.hostname}, including old versions`,
          policy: bucketArn.apply((arn) =>
            JSON.stringify({
              Version: "2012-10-17",
              Statement: [
                { Sid: "ListBackups", Effect: "Allow", Action: ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation"], Resource: arn },
                { Sid: "ReadBackups", Effect: "Allow", Action: ["s3:GetObject", "s3:GetObjectVersion"], Resource: `${arn}/*` },
              ],
            }),
          ),
        },
        parent,
      );
      // The bucket's default encryption uses the AWS-managed aws/s3 key, whose key policy
      // already lets principals of this account decrypt through S3: no KMS statement needed.
      new iam.RolePolicyAttachment(`${name}-backup-read-attachment`, { role: args.backupReaderRole, policyArn: this.backupReadPolicy.arn }, parent);
    }

    this.registerOutputs({ alarmTopicArn: this.alarmTopic.arn, statusAlarmArn: this.statusAlarm.arn });
  }
}

// The mail service, from the same `mailstack:` keys the reference program reads. The
// namespace is passed explicitly because readStackConfig rejects keys it does not know,
// and this program's own keys live in the project namespace.
const mailArgs = readStackConfig(new pulumi.Config("mailstack"));
if (!mailArgs.alertEmail) {
  throw new pulumi.RunError("set mailstack:alertEmail to an address at another provider: the mail host cannot deliver alarms about itself");
}
const mail = new MailStack("mail", mailArgs);

const config = new pulumi.Config();
const extras = new MailExtras("mail-extras", {
  mail,
  // The address as MailStack validated and normalised it.
  alertEmail: mail.config.alertEmail ?? mailArgs.alertEmail,
  googleSiteVerification: config.get("googleSiteVerification") || undefined,
  backupReaderRole: config.get("backupReaderRole") || undefined,
});

export const hostname = mail.hostname;
export const publicIp = mail.publicIp;
export const instanceId = mail.instanceId;
export const backupBucket = mail.backupBucketName;
export const alarmTopicArn = extras.alarmTopic.arn;
export const nextSteps = mail.nextSteps;
