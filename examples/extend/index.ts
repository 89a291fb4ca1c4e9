// MailStack as a library: the reference deployment, configured from `mailstack:` stack config
// exactly like the reference program, plus resources of your own that build on its outputs.
// They live in a small component of their own, so `pulumi preview` shows them as one unit
// and several mail stacks could each get one.
import { MailDnsCloudflare, MailStack, readStackConfig } from "@mailstack/pulumi";
import * as cloudwatch from "@pulumi/aws/cloudwatch";
import * as iam from "@pulumi/aws/iam";
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";

interface MailExtrasArgs {
  /** The mail stack to watch and extend. */
  mail: MailStack;
  /** HTTPS address of an SVG Tiny PS logo, published as the primary domain's BIMI record. */
  bimiLogoUrl?: string;
  /** Name of an existing IAM role (e.g. your administrators') that may read the backups. */
  backupReaderRole?: string;
}

/** A CPU-credit alarm on MailStack's alert topic, a BIMI record and read access to the backups. */
class MailExtras extends pulumi.ComponentResource {
  readonly creditAlarm?: cloudwatch.MetricAlarm;
  readonly bimi?: cloudflare.DnsRecord;
  readonly backupReadPolicy?: iam.Policy;

  constructor(name: string, args: MailExtrasArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mailstack-example:extend:MailExtras", name, {}, opts);
    const parent = { parent: this };
    const { mail } = args;

    // MailStack already alarms on failed status checks when alertEmail is set. A burstable
    // instance (t3, t4g) also slows to its baseline when its CPU credits run out, for
    // instance under a spam flood: warn before that, on the same topic.
    if (mail.alerts && /^t\d/.test(mail.config.instanceType)) {
      this.creditAlarm = new cloudwatch.MetricAlarm(
        `${name}-cpu-credits`,
        {
          alarmDescription: `${mail.hostname} is running out of CPU credits and will slow to its baseline`,
          namespace: "AWS/EC2",
          metricName: "CPUCreditBalance",
          dimensions: { InstanceId: mail.instanceId },
          statistic: "Minimum",
          period: 300,
          evaluationPeriods: 3,
          threshold: 20,
          comparisonOperator: "LessThanThreshold",
          treatMissingData: "notBreaching",
          alarmActions: [mail.alerts.topicArn],
          okActions: [mail.alerts.topicArn],
        },
        parent,
      );
    }

    // BIMI is not part of mailstack's record set (it needs a logo, and Gmail a paid VMC);
    // it goes into the zone MailStack publishes into, whether given by id or looked up.
    if (args.bimiLogoUrl && mail.dns instanceof MailDnsCloudflare) {
      const domain = mail.config.domain;
      this.bimi = new cloudflare.DnsRecord(
        `${name}-bimi`,
        {
          zoneId: mail.dns.zoneIds[domain],
          name: `default._bimi.${domain}`,
          type: "TXT",
          // Cloudflare stores TXT content as quoted strings.
          content: `"v=BIMI1; l=${args.bimiLogoUrl};"`,
          ttl: 3600,
          comment: "BIMI: the logo mail clients may show beside DMARC-authenticated mail",
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
      // already lets principals of this account decrypt through S3: no KMS statement needed
      // (with backupKmsKeyArn, the role also needs kms:Decrypt on that key).
      new iam.RolePolicyAttachment(`${name}-backup-read-attachment`, { role: args.backupReaderRole, policyArn: this.backupReadPolicy.arn }, parent);
    }

    this.registerOutputs({ creditAlarmArn: this.creditAlarm?.arn });
  }
}

// The mail service, from the same `mailstack:` keys the reference program reads. The
// namespace is passed explicitly because readStackConfig rejects keys it does not know,
// and this program's own keys live in the project namespace.
const mail = new MailStack("mail", readStackConfig(new pulumi.Config("mailstack")));

const config = new pulumi.Config();
new MailExtras("mail-extras", {
  mail,
  bimiLogoUrl: config.get("bimiLogoUrl") || undefined,
  backupReaderRole: config.get("backupReaderRole") || undefined,
});

export const hostname = mail.hostname;
export const publicIp = mail.publicIp;
export const instanceId = mail.instanceId;
export const backupBucket = mail.backupBucketName;
export const alarmTopicArn = mail.alerts?.topicArn;
export const nextSteps = mail.nextSteps;
