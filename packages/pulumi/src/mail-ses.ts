import {
  type MailConfig,
  SES_INBOUND_PREFIX,
  SES_REJECTED_DAYS,
  SES_REJECTED_PREFIX,
  type SesSmtpCredentials,
  sesDkimPrivateKey,
  sesMailFromDomain,
  sesReceivingRules,
  sesSmtpPassword,
} from "@mailstack/core";
import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { getCallerIdentityOutput } from "@pulumi/aws/getCallerIdentity";
import { getPartitionOutput } from "@pulumi/aws/getPartition";
import * as iam from "@pulumi/aws/iam";
import * as s3 from "@pulumi/aws/s3";
import * as ses from "@pulumi/aws/ses";
import * as sesv2 from "@pulumi/aws/sesv2";
import * as sns from "@pulumi/aws/sns";
import { denyInsecureTransport } from "./mail-backup";

/** The sending events SES publishes to the alert topic: those an operator acts on, not every delivery. */
export const SES_ALERT_EVENTS = ["BOUNCE", "COMPLAINT", "REJECT", "DELIVERY_DELAY", "RENDERING_FAILURE"] as const;

/** The only action the relay's IAM user may take: SES's SMTP interface sends with it. */
export const SES_SMTP_ACTION = "ses:SendRawEmail";

/** Arguments of {@link MailSes}. */
export interface MailSesArgs {
  /**
   * The validated configuration, with `ses` set (MailSes is refused without it). `ses.outbound`
   * and `ses.inbound` decide which half exists, `ses.region` where; the mail domains, the DKIM
   * selector, the MAIL FROM label, the receiving addresses and `tls.inbound` come from it too.
   */
  readonly config: MailConfig;
  /**
   * PEM private key (PKCS#1 or PKCS#8) of `config.dkimSelector`, DkimKey's `privateKeyPem`:
   * each domain identity is verified by its record and signs with it (BYODKIM). Required; it
   * reaches SES only as a Pulumi secret.
   */
  readonly dkimPrivateKeyPem?: pulumi.Input<string>;
  /**
   * An SNS topic in the SES region (MailAlerts' topic when SES is in the stack's region) that
   * SES publishes the sending events {@link SES_ALERT_EVENTS} to, with `ses.outbound`. MailSes
   * sets the topic's policy: the statement AWS gives every new topic (the account's own
   * principals) plus one that lets `ses.amazonaws.com` publish for this account and
   * configuration set. Default none: see `alertEmail`.
   */
  readonly alertTopicArn?: pulumi.Input<string>;
  /**
   * With `ses.outbound` and no `alertTopicArn`: an address that a topic of MailSes's own, in the
   * SES region, e-mails the sending events to (AWS first sends it a confirmation link). Use it
   * when SES is in another region than the alert topic: SES publishes only to topics in its own
   * region. Default none: without either, no event destination exists (SES still forwards each
   * bounce to its sender by mail, and keeps its suppression list).
   */
  readonly alertEmail?: string;
  /** Tags for every resource that takes them (identities, configuration set, user, bucket, topic). Default none. */
  readonly tags?: Readonly<Record<string, string>>;
}

/**
 * Amazon SES for the stack, in `config.ses.region` (each resource names that region, as the
 * backup replica does, so it may differ from the stack's).
 *
 * Both halves: a domain identity per mail domain that signs with the stack's own DKIM key and
 * selector (BYODKIM: the record `<selector>._domainkey.<domain>` the stack already publishes
 * verifies the identity and every signature, whichever way a message leaves); SES sends and
 * receives only for verified domains.
 *
 * Outbound (`ses.outbound`): a custom MAIL FROM domain per identity (`sesMailFromDomain`; its MX and SPF records are in the
 * core's DNS records, so SPF aligns with the From for DMARC), a configuration set (reputation
 * metrics, the account's suppression list for bounces and complaints, and the events an
 * operator acts on published to the alert topic), and an IAM user under `/mailstack/` that may
 * only `ses:SendRawEmail` as these identities through this configuration set, with the access
 * key whose SMTP password ({@link sesSmtpPassword}) the host's Postfix relays with.
 *
 * Inbound (`ses.inbound`): a bucket (SSE-S3, closed to the public, TLS only, writable by SES
 * only under `inbound/` and only for this rule set), a receipt rule set with one rule per
 * receiving address (`sesReceivingRules`: SES accepts nothing else, refusing it at RCPT) that
 * stores each message under `inbound/<address>/`, and that rule set made active. An account
 * has ONE active receipt rule set per region: activating this one deactivates whichever was
 * active in that region before, with every rule in it. Nothing is refused for that; see
 * docs/ses.md.
 */
export class MailSes extends pulumi.ComponentResource {
  /** The SES region of every resource here. */
  readonly region: string;
  /** The domain identities by mail domain. */
  readonly identities: Record<string, sesv2.EmailIdentity> = {};
  /** The identities' names (the mail domains), sorted. */
  readonly identityNames: string[] = [];
  /** The custom MAIL FROM domain of each mail domain, e.g. `bounce.example.com`; empty without `ses.outbound`. */
  readonly mailFromDomains: Record<string, string> = {};
  /** The configuration set every identity sends through by default; undefined without `ses.outbound`. */
  readonly configurationSet?: sesv2.ConfigurationSet;
  /** The relay's IAM user; undefined without `ses.outbound`. */
  readonly smtpUser?: iam.User;
  /** The SMTP user name: the access key's id (not a secret); undefined without `ses.outbound`. */
  readonly smtpUsername?: pulumi.Output<string>;
  /** The SMTP user name and password, a Pulumi secret, for MailParameters; undefined without `ses.outbound`. */
  readonly smtpCredentials?: pulumi.Output<SesSmtpCredentials>;
  /** The SNS topic of MailSes's own (with `alertEmail`); undefined otherwise. */
  readonly eventTopic?: sns.Topic;
  /** The inbound bucket; undefined without `ses.inbound`. */
  readonly inboundBucket?: s3.Bucket;
  /** The inbound bucket's name; undefined without `ses.inbound`. */
  readonly inboundBucketName?: pulumi.Output<string>;
  /** The inbound bucket's ARN; undefined without `ses.inbound`. */
  readonly inboundBucketArn?: pulumi.Output<string>;
  /** The receipt rule set's name; undefined without `ses.inbound`. */
  readonly receiptRuleSetName?: string;

  constructor(name: string, args: MailSesArgs, opts?: pulumi.ComponentResourceOptions) {
    const { config } = args;
    const settings = config.ses;
    const problems: string[] = [];
    if (settings === undefined) problems.push("config: has no ses settings (sesOutbound or sesInbound); create MailSes only with one of them");
    if (settings !== undefined && args.dkimPrivateKeyPem === undefined) problems.push("dkimPrivateKeyPem: is required, as every identity is verified by and signs with the stack's DKIM key");
    if (args.alertTopicArn !== undefined && args.alertEmail !== undefined) problems.push("alertEmail: an own topic for it is made only without alertTopicArn; give one of the two");
    // Before super(): a refused component is not registered at all; the message names it.
    if (settings === undefined || problems.length > 0) throw new pulumi.ResourceError(`MailSes ${name}: ${problems.join("; ")}`, undefined);
    super("mailstack:aws:MailSes", name, {}, opts);
    const parent = { parent: this };
    const region = settings.region;
    this.region = region;
    const tags = { ...args.tags, "mailstack:role": "ses" };
    const account = getCallerIdentityOutput({}, parent).accountId;
    const partition = getPartitionOutput({}, parent).partition;
    const sesArn = (resource: string) => pulumi.interpolate`arn:${partition}:ses:${region}:${account}:${resource}`;
    const outputs: Record<string, unknown> = {};

    const setName = sesResourceName(config.hostname, /[^A-Za-z0-9_-]/g);
    const configurationSet = settings.outbound
      ? new sesv2.ConfigurationSet(
          `${name}-configuration-set`,
          {
            configurationSetName: setName,
            region,
            reputationOptions: { reputationMetricsEnabled: true },
            sendingOptions: { sendingEnabled: true },
            // SES stops sending to an address that bounced or complained, rather than hurting the account's reputation again.
            suppressionOptions: { suppressedReasons: ["BOUNCE", "COMPLAINT"] },
            tags,
          },
          parent,
        )
      : undefined;
    this.configurationSet = configurationSet;
    // Both halves need the identities: SES sends and receives only for verified domains. The
    // DKIM record the stack publishes anyway verifies them (BYODKIM takes the key as base64
    // DER, without armour or line breaks).
    const signingKey = pulumi.secret(pulumi.output(args.dkimPrivateKeyPem as pulumi.Input<string>).apply(sesDkimPrivateKey));
    const identityArns: pulumi.Output<string>[] = [];
    for (const domain of [...config.domains].sort()) {
      const identity = new sesv2.EmailIdentity(
        `${name}-identity-${domain}`,
        {
          emailIdentity: domain,
          region,
          // Mail the host relays names no configuration set; this one is every identity's default.
          configurationSetName: configurationSet?.configurationSetName,
          dkimSigningAttributes: { domainSigningSelector: config.dkimSelector, domainSigningPrivateKey: signingKey },
          tags,
        },
        { parent: this, additionalSecretOutputs: ["dkimSigningAttributes"] },
      );
      this.identities[domain] = identity;
      this.identityNames.push(domain);
      identityArns.push(sesArn(`identity/${domain}`));
      if (!settings.outbound) continue;
      const mailFromDomain = sesMailFromDomain(config, domain);
      new sesv2.EmailIdentityMailFromAttributes(
        `${name}-mail-from-${domain}`,
        {
          emailIdentity: identity.emailIdentity,
          region,
          mailFromDomain,
          // Until SES finds the MAIL FROM domain's MX (or if it ever disappears), SES sends with
          // its own amazonses.com envelope sender instead of refusing: mail keeps flowing, and
          // DMARC still passes through the DKIM signature, which aligns with the From.
          behaviorOnMxFailure: "USE_DEFAULT_VALUE",
        },
        parent,
      );
      this.mailFromDomains[domain] = mailFromDomain;
    }
    Object.assign(outputs, { identityNames: this.identityNames });

    if (configurationSet !== undefined) {
      const configurationSetArn = sesArn(`configuration-set/${setName}`);

      let topicArn = args.alertTopicArn !== undefined ? pulumi.output(args.alertTopicArn) : undefined;
      if (args.alertEmail !== undefined) {
        this.eventTopic = new sns.Topic(`${name}-events-topic`, { displayName: `mailstack ${config.hostname} SES`, region, tags: args.tags }, parent);
        new sns.TopicSubscription(`${name}-events-email`, { topic: this.eventTopic.arn, region, protocol: "email", endpoint: args.alertEmail }, parent);
        topicArn = this.eventTopic.arn;
      }
      if (topicArn !== undefined) {
        const policy = new sns.TopicPolicy(
          `${name}-events-policy`,
          {
            arn: topicArn,
            region,
            policy: pulumi.all([topicArn, account, configurationSetArn]).apply(([topic, accountId, setArn]) => JSON.stringify(eventTopicPolicy(topic, accountId, setArn))),
          },
          parent,
        );
        new sesv2.ConfigurationSetEventDestination(
          `${name}-events`,
          {
            configurationSetName: configurationSet.configurationSetName,
            eventDestinationName: "mailstack-alerts",
            region,
            eventDestination: { enabled: true, matchingEventTypes: [...SES_ALERT_EVENTS], snsDestination: { topicArn } },
          },
          // SES checks that it may publish when the destination is created.
          { parent: this, dependsOn: [policy] },
        );
      }

      const user = new iam.User(`${name}-smtp-user`, { path: "/mailstack/", tags }, parent);
      this.smtpUser = user;
      new iam.UserPolicy(
        `${name}-smtp-send`,
        {
          user: user.name,
          policy: pulumi.all([pulumi.all(identityArns), configurationSetArn]).apply(([identities, setArn]) => JSON.stringify(smtpSendPolicy(identities, setArn))),
        },
        parent,
      );
      // Its `secret` (and `sesSmtpPasswordV4`) are secret outputs of the resource itself.
      const key = new iam.AccessKey(`${name}-smtp-key`, { user: user.name }, parent);
      this.smtpUsername = key.id;
      // Derived here for SES's region; AccessKey's own sesSmtpPasswordV4 is for the provider's.
      this.smtpCredentials = pulumi.secret(pulumi.all([key.id, key.secret]).apply(([username, secret]) => ({ username, password: sesSmtpPassword(secret, region) })));
      Object.assign(outputs, { mailFromDomains: this.mailFromDomains, smtpUsername: this.smtpUsername });
    }

    if (settings.inbound) {
      const ruleSetName = sesResourceName(config.hostname, /[^A-Za-z0-9_.-]/g);
      this.receiptRuleSetName = ruleSetName;
      const bucket = new s3.Bucket(`${name}-inbound-bucket`, { forceDestroy: false, region, tags }, parent);
      this.inboundBucket = bucket;
      this.inboundBucketName = bucket.bucket;
      this.inboundBucketArn = bucket.arn;
      const id = bucket.id;
      new s3.BucketOwnershipControls(`${name}-inbound-ownership`, { bucket: id, region, rule: { objectOwnership: "BucketOwnerEnforced" } }, parent);
      const publicAccess = new s3.BucketPublicAccessBlock(
        `${name}-inbound-public-access`,
        { bucket: id, region, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true },
        parent,
      );
      // SSE-S3: SES writes with no KMS grant to manage. (A bucket key matters only with KMS.)
      new s3.BucketServerSideEncryptionConfiguration(
        `${name}-inbound-encryption`,
        { bucket: id, region, rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } }] },
        parent,
      );
      const bucketPolicy = new s3.BucketPolicy(
        `${name}-inbound-policy`,
        {
          bucket: id,
          region,
          policy: pulumi
            .all([bucket.arn, account, sesArn(`receipt-rule-set/${ruleSetName}:receipt-rule/*`)])
            .apply(([arn, accountId, rules]) => JSON.stringify(inboundBucketPolicy(arn, accountId, rules))),
        },
        // S3 refuses a policy while the public-access block is still being applied.
        { parent: this, dependsOn: [publicAccess] },
      );
      new s3.BucketLifecycleConfiguration(
        `${name}-inbound-lifecycle`,
        {
          bucket: id,
          region,
          rules: [
            // What the host refused on import, kept for the postmaster a while. Nothing under
            // inbound/ ever expires: accepted mail waits there until the host has imported it.
            { id: "rejected", status: "Enabled", filter: { prefix: SES_REJECTED_PREFIX }, expiration: { days: SES_REJECTED_DAYS } },
            { id: "incomplete-uploads", status: "Enabled", filter: {}, abortIncompleteMultipartUpload: { daysAfterInitiation: 7 } },
          ],
        },
        parent,
      );

      const ruleSet = new ses.ReceiptRuleSet(`${name}-rule-set`, { ruleSetName, region }, parent);
      // SES receives in TLS as the host does on port 25: required only where the host requires it.
      const tlsPolicy = config.tls.inbound === "required" ? "Require" : "Optional";
      let previous: ses.ReceiptRule | undefined;
      const rules: ses.ReceiptRule[] = [];
      for (const rule of sesReceivingRules(config)) {
        previous = new ses.ReceiptRule(
          `${name}-rule-${rule.address}`,
          {
            name: receiptRuleName(rule.address),
            ruleSetName: ruleSet.ruleSetName,
            region,
            recipients: [rule.address],
            enabled: true,
            // SES's spam and virus verdicts become headers; the host's own filter decides.
            scanEnabled: true,
            tlsPolicy,
            s3Actions: [{ bucketName: bucket.bucket, objectKeyPrefix: rule.prefix, position: 1 }],
            // In address order; `after` names the rule before.
            ...(previous !== undefined ? { after: previous.name } : {}),
          },
          // SES checks that it may write to the bucket when a rule is created.
          { parent: this, dependsOn: [bucketPolicy] },
        );
        rules.push(previous);
      }
      // Active once every rule is in place, so SES never answers for a partial set.
      new ses.ActiveReceiptRuleSet(`${name}-active-rule-set`, { ruleSetName: ruleSet.ruleSetName, region }, { parent: this, dependsOn: rules });
      Object.assign(outputs, { inboundBucketName: this.inboundBucketName, receiptRuleSetName: ruleSetName });
    }

    this.registerOutputs({ region, ...outputs });
  }
}

/**
 * A name SES takes for a configuration set or rule set: `mailstack-<host name>` with every
 * character outside `allowed` as `-`, at most 64 characters (the longest cut and given a hash,
 * so two long host names never share one).
 */
function sesResourceName(hostname: string, disallowed: RegExp): string {
  const name = `mailstack-${hostname}`.replace(disallowed, "-");
  return name.length <= 64 ? name : `${name.slice(0, 55)}-${createHash("sha256").update(hostname).digest("hex").slice(0, 8)}`;
}

/**
 * A receipt rule's name for an address: the address with `@` as `_at_` where that is a name SES
 * takes (letters, digits, `_ . -`, at most 64), otherwise a cut of it and a hash of the address.
 */
export function receiptRuleName(address: string): string {
  const plain = address.replace("@", "_at_");
  if (/^[A-Za-z0-9][A-Za-z0-9_.-]*[A-Za-z0-9]$/.test(plain) && plain.length <= 64) return plain;
  const cut = plain.replace(/[^A-Za-z0-9_.-]/g, "-").slice(0, 46).replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
  return `${cut || "rule"}-${createHash("sha256").update(address).digest("hex").slice(0, 16)}`;
}

/** The relay user's one permission: send raw mail as the stack's identities, through its configuration set (SES checks both). */
function smtpSendPolicy(identityArns: string[], configurationSetArn: string) {
  return {
    Version: "2012-10-17",
    Statement: [{ Sid: "SendAsTheStacksDomains", Effect: "Allow", Action: SES_SMTP_ACTION, Resource: [...identityArns, configurationSetArn] }],
  };
}

/**
 * The alert topic's policy: AWS's default statement (principals of the account itself; the
 * alarms publish through it) and SES publishing this account's events of this configuration set.
 */
function eventTopicPolicy(topicArn: string, account: string, configurationSetArn: string) {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "AccountOwner",
        Effect: "Allow",
        Principal: { AWS: "*" },
        Action: [
          "SNS:GetTopicAttributes",
          "SNS:SetTopicAttributes",
          "SNS:AddPermission",
          "SNS:RemovePermission",
          "SNS:DeleteTopic",
          "SNS:Subscribe",
          "SNS:ListSubscriptionsByTopic",
          "SNS:Publish",
        ],
        Resource: topicArn,
        Condition: { StringEquals: { "AWS:SourceOwner": account } },
      },
      {
        Sid: "SesSendingEvents",
        Effect: "Allow",
        Principal: { Service: "ses.amazonaws.com" },
        Action: "SNS:Publish",
        Resource: topicArn,
        Condition: { StringEquals: { "aws:SourceAccount": account, "aws:SourceArn": configurationSetArn } },
      },
    ],
  };
}

/** TLS only; SES may add objects below `inbound/` for this account's rules of this rule set, nothing else. */
function inboundBucketPolicy(bucketArn: string, account: string, receiptRules: string) {
  return {
    Version: "2012-10-17",
    Statement: [
      denyInsecureTransport(bucketArn),
      {
        Sid: "SesStoresInbound",
        Effect: "Allow",
        Principal: { Service: "ses.amazonaws.com" },
        Action: "s3:PutObject",
        Resource: `${bucketArn}/${SES_INBOUND_PREFIX}*`,
        Condition: { StringEquals: { "aws:SourceAccount": account }, StringLike: { "aws:SourceArn": receiptRules } },
      },
    ],
  };
}
