import {
  type AppPasswordService,
  ConfigError,
  type ConfigIssue,
  type DnsRecord,
  HOST_BUNDLE_PARAMETERS,
  HOST_OBJECTS,
  hostObjectsPrefix,
  keyFileNames,
  keyParameterName,
  type MailConfig,
  type MailboxSendingLimits,
  type MailConfigInput,
  type LdapInput,
  parseConfig,
  sesInboundMx,
} from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";
import * as ec2 from "@pulumi/aws/ec2";
import { getAvailabilityZonesOutput } from "@pulumi/aws/getAvailabilityZones";
import { getRegionOutput } from "@pulumi/aws/getRegion";
import { DkimKey } from "./dkim-key";
import { MailAlerts } from "./mail-alerts";
import { MailBackup } from "./mail-backup";
import { type DsRecord, MailDnsCloudflare } from "./mail-dns-cloudflare";
import { MailDnsRoute53 } from "./mail-dns-route53";
import { MailFirewall } from "./mail-firewall";
import { MailHost } from "./mail-host";
import { MailMonitoring } from "./mail-monitoring";
import { MailReadiness } from "./mail-readiness";
import { MailSes } from "./mail-ses";
import { type Credential, MANIFEST_PARAMETER, type MailboxCredential, MailParameters } from "./mail-parameters";
import { MailSnapshots } from "./mail-snapshots";
import { MailStackConfigError } from "./config-error";
import { TlsKey } from "./tls-key";

export interface MailboxArgs extends MailboxCredential {
  /** The mailbox's address; also its login name. */
  readonly address: string;
  /** Storage quota such as 500M, 5G or unlimited. Default 5G. */
  readonly quota?: string;
  /** Further addresses delivered to this mailbox, which it may also send as. Default none. */
  readonly aliases?: readonly string[];
  /** This login's own hourly sending limits. Default: the stack's `sendingLimits`. */
  readonly sendingLimits?: Readonly<MailboxSendingLimits>;
  /**
   * `false` disables the mailbox in place, keeping its mail: logins are refused and mail to it
   * and its own aliases gets `550 5.2.1` and `disabledReply`. Default true.
   */
  readonly enabled?: boolean;
  /** The refusal's text while it is disabled. Default "Mailbox disabled, not accepting messages". */
  readonly disabledReply?: string;
  /**
   * Named credentials, one per mail client, each revocable by removing it (which ends the
   * mailbox's open sessions). Default none: only the mailbox's password logs in.
   */
  readonly appPasswords?: readonly AppPasswordArgs[];
  /** Refuse the mailbox's own password on IMAP, POP3 and submission, leaving the app passwords. Default false. */
  readonly requireAppPasswords?: boolean;
}

/** An app password of a mailbox: a name, the protocols it logs in with, and its secret. */
export interface AppPasswordArgs extends Credential {
  /** Its name within the mailbox, e.g. `phone`: lower-case letters, digits and inner hyphens. */
  readonly name: string;
  /** The protocols it logs in with. Default: every one the host offers (IMAP, submission, POP3 when on). */
  readonly services?: readonly AppPasswordService[];
}

/** The LDAP directory of MailStackArgs: LdapInput, with the bind password a Pulumi input (usually a secret). */
export interface LdapArgs extends Readonly<Omit<LdapInput, "bindPassword" | "domains">> {
  /** The bind account's password; it reaches the host only as SSM SecureString parameters. */
  readonly bindPassword: pulumi.Input<string>;
  /** The hosted domains whose users the directory holds. Default every hosted domain. */
  readonly domains?: readonly string[];
}

/**
 * Everything a mail deployment needs, in the shape of the reference program's stack config
 * (see MailConfigInput for every field and its default). Passwords and resource ids may be
 * Pulumi outputs; everything that decides which resources exist is plain.
 */
export interface MailStackArgs
  extends Readonly<Omit<MailConfigInput, "mailboxes" | "vpcId" | "subnetId" | "cloudflareZoneIds" | "route53ZoneIds" | "backupKmsKeyArn" | "backupBucket" | "ldap">> {
  /** The mailboxes, at least one. */
  readonly mailboxes: readonly MailboxArgs[];
  /** Users from an LDAP directory besides the mailboxes (see LdapInput). Default none. */
  readonly ldap?: LdapArgs;
  /** Existing VPC; requires subnetId. Default: the account's default VPC. */
  readonly vpcId?: pulumi.Input<string>;
  /** Existing public subnet. Default: the default VPC's default subnet in availabilityZone. */
  readonly subnetId?: pulumi.Input<string>;
  /**
   * Cloudflare zone ids by domain (mail domains and nonMailDomains), with dnsProvider
   * cloudflare. Default: each zone is looked up by name, which needs the token's Zone Read.
   */
  readonly cloudflareZoneIds?: Readonly<Record<string, pulumi.Input<string>>>;
  /**
   * Customer-managed KMS key (in the stack's region) for the backup bucket; the host's role
   * may use it through S3 only. Default: the AWS-managed `aws/s3` key.
   */
  readonly backupKmsKeyArn?: pulumi.Input<string>;
  /**
   * An existing S3 bucket for the backups, by name (`my-mail-backups`) or ARN
   * (`arn:aws:s3:::my-mail-backups`), in the stack's region. Default: a new bucket, versioned,
   * encrypted, closed to the public, TLS only, with a lifecycle by backupRetentionDays.
   *
   * With an existing bucket mailstack creates no bucket and changes none of its settings:
   * versioning (without it restic's prune deletes old data for good), encryption, lifecycle,
   * public-access block, bucket policy, Object Lock and replication are yours to set, so
   * backupReplicaRegion, backupObjectLock and a backupRetentionDays other than the default
   * are refused. The host's role still gets only `restic/` in that bucket, and is denied
   * deleting versions or changing the bucket's rules; give backupKmsKeyArn if the bucket's
   * default encryption uses a customer-managed key, so the role may use it.
   */
  readonly backupBucket?: pulumi.Input<string>;
  /**
   * Route 53 hosted zone ids by domain, with dnsProvider route53. Default: each public hosted
   * zone is looked up by name, which needs `route53:ListHostedZones`.
   */
  readonly route53ZoneIds?: Readonly<Record<string, pulumi.Input<string>>>;
  /**
   * SSM path of the runtime files, and below `host/` of the host's objects in the backup
   * bucket: all the host's role may read. Default `/mailstack/<project>/<stack>/<name>`,
   * unique per project, stack and MailStack. Stacks deployed before the project was part of
   * the default use `/mailstack/<stack>/<name>`: pin that path here (or with the stack config
   * key `parameterPath`), or the next update moves them, replacing the instance (see
   * docs/configuration.md, "Upgrading: the parameter path").
   */
  readonly parameterPath?: string;
  /** Pin the host's AMI. Default: the newest Ubuntu 24.04 image, looked up once. */
  readonly amiId?: pulumi.Input<string>;
  /**
   * Protect the data volume, the Elastic IP, the backup buckets and the restic password from
   * deletion. Default true; set false only for throwaway stacks.
   */
  readonly protect?: boolean;
  /** Tags added to every AWS resource that takes tags. Default none. */
  readonly tags?: Readonly<Record<string, string>>;
}

/** The AWS "remove email sending limitations" form, which also records the reverse DNS. */
export const PORT_25_REQUEST_URL = "https://aws-portal.amazon.com/gp/aws/html-forms-controller/contactus/ec2-email-limit-rdns-request";

/**
 * A complete mail service: host, firewall, DNS, DKIM, runtime parameters and backup bucket,
 * and Amazon SES as relay and last MX where the options ask for it, from one configuration
 * that is validated before any resource is declared.
 */
export class MailStack extends pulumi.ComponentResource {
  /** The validated configuration every child was built from. */
  readonly config: MailConfig;
  /** The instance, its data volume, Elastic IP and role. */
  readonly host: MailHost;
  /** The host's security group and its rules. */
  readonly firewall: MailFirewall;
  /** The records in Cloudflare (MailDnsCloudflare) or Route 53 (MailDnsRoute53), by `dnsProvider`. */
  readonly dns: MailDnsCloudflare | MailDnsRoute53;
  /** The signing DKIM key. */
  readonly dkim: DkimKey;
  /** Every published DKIM key by selector: the signing one and, during a rotation, the others. */
  readonly dkimKeys: Record<string, DkimKey> = {};
  /** The host's TLS key, which the TLSA record pins. */
  readonly tlsKey: TlsKey;
  /** The runtime files (users, maps, keys): keys as SSM parameters, the rest in one S3 object; the host syncs them. */
  readonly parameters: MailParameters;
  /** The backup bucket (or the existing one's name and ARN, with backupBucket) and the restic password. */
  readonly backup: MailBackup;
  /** Daily EBS snapshots of the data volume. */
  readonly snapshots: MailSnapshots;
  /** Status-check alarms e-mailed to alertEmail; undefined when alertEmail is not set. */
  readonly alerts?: MailAlerts;
  /** The host's log group, its metric filters, the dashboard and, with alertEmail, the alarms on the host's figures. */
  readonly monitoring: MailMonitoring;
  /** The wait for a healthy service at the end of `pulumi up`; undefined when waitUntilHealthyMinutes is 0. */
  readonly readiness?: MailReadiness;
  /** Amazon SES as relay (sesOutbound) and last MX (sesInbound); undefined when both are off. */
  readonly ses?: MailSes;
  /** The host's public IPv4 address (its Elastic IP), dotted. */
  readonly publicIp: pulumi.Output<string>;
  /** The host's name, e.g. `mail.example.com`: its A record, reverse DNS, HELO and certificate name. */
  readonly hostname: string;
  /** The EC2 instance's id, `i-…`; changes when the instance is replaced. */
  readonly instanceId: pulumi.Output<string>;
  /** The stack's SSM path, below which the host reports its status (`mailstack check` reads it there). */
  readonly parameterPath: string;
  /** The CloudWatch Logs group the host ships its journal to. */
  readonly logGroupName: pulumi.Output<string>;
  /** Every DNS record published, with its values, in the core's form (provider independent). */
  readonly dnsRecords: pulumi.Output<DnsRecord[]>;
  /** The backup bucket's name: the one created, or the existing backupBucket's. */
  readonly backupBucketName: pulumi.Output<string>;
  /** The replica bucket's name; undefined without backupReplicaRegion. */
  readonly backupReplicaBucketName?: pulumi.Output<string>;
  /** Where the host's restic repository is, e.g. `s3:https://s3.eu-west-1.amazonaws.com/<bucket>/restic`. */
  readonly resticRepository: pulumi.Output<string>;
  /** SHA-256 of the host bundle this deployment publishes; the host reports it in `<parameterPath>/status/host-bundle` once it runs it. */
  readonly hostBundleSha256: pulumi.Output<string>;
  /** The restic repository password, a Pulumi secret; keep a copy outside AWS. */
  readonly resticPassword: pulumi.Output<string>;
  /** DS record of each zone Cloudflare signs, for the registrar; empty without `dnssec`. */
  readonly dsRecords: pulumi.Output<DsRecord[]>;
  /** What to do after the first `pulumi up`, with this deployment's values filled in. */
  readonly nextSteps: pulumi.Output<string>;
  /** The SES domain identities (the mail domains), with sesOutbound or sesInbound; undefined without either. */
  readonly sesIdentities?: string[];
  /** Each mail domain's custom MAIL FROM domain (`bounce.example.com`), with sesOutbound; undefined without. */
  readonly sesMailFromDomains?: Record<string, string>;
  /** The SMTP user name the host relays to SES with (an access key id; the password stays a secret in SSM), with sesOutbound; undefined without. */
  readonly sesSmtpUsername?: pulumi.Output<string>;
  /** The bucket SES keeps inbound mail in while the host is away, with sesInbound; undefined without. */
  readonly sesInboundBucketName?: pulumi.Output<string>;
  /** The SES receipt rule set made active in the SES region, with sesInbound; undefined without. */
  readonly sesReceiptRuleSetName?: string;

  constructor(name: string, args: MailStackArgs, opts?: pulumi.ComponentResourceOptions) {
    // Every bad field is reported at once, before any resource exists, this one included.
    const { config, parameterPath } = validate(name, args, opts);
    super("mailstack:index:MailStack", name, {}, opts);
    this.config = config;
    this.hostname = config.hostname;
    const parent = { parent: this };
    const tags = { ...args.tags, "mailstack:stack": `${pulumi.getProject()}/${pulumi.getStack()}` };
    const protect = args.protect ?? true;

    const network = resolveNetwork(args, config, this);
    this.firewall = new MailFirewall(`${name}-firewall`, { config, vpcId: network.vpcId, tags }, parent);
    // Named by selector, so a key keeps its resource through every step of a rotation. Stacks
    // made before rotation existed hold the signing key as `<name>-dkim`: the alias keeps it.
    for (const selector of config.dkimSelectors) {
      const aliases = selector === config.dkimSelector ? [{ name: `${name}-dkim` }] : [];
      this.dkimKeys[selector] = new DkimKey(`${name}-dkim-${selector}`, { selector }, { parent: this, aliases });
    }
    this.dkim = this.dkimKeys[config.dkimSelector];
    this.tlsKey = new TlsKey(`${name}-tls`, {}, parent);

    this.backup = new MailBackup(
      `${name}-backup`,
      args.backupBucket !== undefined
        ? { bucket: { existing: args.backupBucket }, protect, tags }
        : {
            retentionDays: config.backupRetentionDays,
            kmsKeyArn: args.backupKmsKeyArn,
            objectLock: config.backupObjectLock,
            replicaRegion: config.backupReplicaRegion,
            protect,
            tags,
          },
      parent,
    );
    this.snapshots = new MailSnapshots(`${name}-snapshots`, { retentionDays: config.snapshotRetentionDays, tags }, parent);

    // SES publishes sending events only to a topic in its own region: the alert topic when SES
    // is in the stack's region (known once MailAlerts exists, after the host), else a topic of
    // MailSes's own there.
    let resolveAlertTopic: ((arn: pulumi.Output<string>) => void) | undefined;
    if (config.ses !== undefined) {
      const notify = config.ses.outbound && config.alertEmail !== undefined;
      const sameRegion = stackRegion(opts) === config.ses.region;
      let alertTopicArn: pulumi.Output<string> | undefined;
      if (notify && sameRegion) [alertTopicArn, resolveAlertTopic] = pulumi.deferredOutput<string>();
      this.ses = new MailSes(
        `${name}-ses`,
        {
          config,
          dkimPrivateKeyPem: this.dkim.privateKeyPem,
          alertTopicArn,
          alertEmail: notify && !sameRegion ? config.alertEmail : undefined,
          tags,
        },
        parent,
      );
    }

    this.parameters = new MailParameters(
      `${name}-parameters`,
      {
        config,
        path: parameterPath,
        bucket: this.backup.bucketName,
        kmsKeyArn: args.backupKmsKeyArn,
        credentials: args.mailboxes,
        dkimPrivateKeyPem: this.dkim.privateKeyPem,
        tlsPrivateKeyPem: this.tlsKey.privateKeyPem,
        resticPassword: this.backup.resticPassword,
        ldapBindPassword: args.ldap?.bindPassword,
        sesSmtpCredentials: this.ses?.smtpCredentials,
        tags,
      },
      parent,
    );
    this.host = new MailHost(
      `${name}-host`,
      {
        config,
        subnetId: network.subnetId,
        availabilityZone: network.availabilityZone,
        securityGroupIds: [this.firewall.securityGroupId],
        parameterPath,
        amiId: args.amiId,
        backupBucketArn: this.backup.bucketArn,
        backupKmsKeyArn: args.backupKmsKeyArn,
        sesInboundBucketArn: this.ses?.inboundBucketArn,
        dataVolumeTags: this.snapshots.targetTags,
        protect,
        tags,
      },
      // The host reads its parameters at first boot.
      { parent: this, dependsOn: [this.parameters] },
    );
    const dnsValues = {
      config,
      ipv4: this.host.publicIp,
      dkimPublicKeys: Object.fromEntries(Object.entries(this.dkimKeys).map(([selector, key]) => [selector, key.publicKey])),
      tlsKeySha256: this.tlsKey.publicKeySha256,
    };
    this.dns =
      config.dnsProvider === "route53"
        ? new MailDnsRoute53(`${name}-dns`, { ...dnsValues, zoneIds: args.route53ZoneIds }, parent)
        : new MailDnsCloudflare(`${name}-dns`, { ...dnsValues, zoneIds: args.cloudflareZoneIds }, parent);
    this.dsRecords = this.dns instanceof MailDnsCloudflare ? this.dns.dsRecords : pulumi.output([]);
    // AWS checks that the forward record exists before it sets the reverse one. On destroy
    // the PTR goes first, as a dependent of both the A record and the Elastic IP (through
    // allocationId), so the address is released only once its reverse name is gone.
    const ptr = new ec2.EipDomainName(
      `${name}-ptr`,
      { allocationId: this.host.eip.allocationId, domainName: config.hostname },
      { parent: this, dependsOn: [this.dns.resources["host-a"]] },
    );
    if (config.alertEmail !== undefined) {
      this.alerts = new MailAlerts(
        `${name}-alerts`,
        { email: config.alertEmail, instanceId: this.host.instanceId, hostname: config.hostname, tags },
        parent,
      );
      resolveAlertTopic?.(this.alerts.topicArn);
    }
    this.monitoring = new MailMonitoring(
      `${name}-monitoring`,
      {
        hostname: config.hostname,
        parameterPath,
        hostRoleName: this.host.role.name,
        logRetentionDays: config.logRetentionDays,
        alarmTopicArn: this.alerts?.topicArn,
        // The core refuses alarm settings without alertEmail; an empty one is no setting.
        alarms: this.alerts ? config.alarms : undefined,
        tags,
      },
      parent,
    );
    if (config.waitUntilHealthyMinutes > 0) {
      this.readiness = new MailReadiness(
        `${name}-readiness`,
        {
          hostname: config.hostname,
          publicIp: this.host.publicIp,
          dnsRecords: this.dns.records,
          hostBundleSha256: this.host.bundleSha256,
          parameterPath,
          region: getRegionOutput({}, parent).region,
          timeoutMinutes: config.waitUntilHealthyMinutes,
          checkOptions: config.healthCheckSkip.flatMap((id) => ["--skip", id]),
        },
        // Last: what it checks is all there, the reverse name and the runtime files included.
        { parent: this, dependsOn: [this.host, this.dns, ptr, this.parameters, this.monitoring] },
      );
    }

    this.publicIp = this.host.publicIp;
    this.instanceId = this.host.instanceId;
    this.parameterPath = parameterPath;
    this.logGroupName = this.monitoring.logGroupName;
    this.dnsRecords = this.dns.records;
    this.backupBucketName = this.backup.bucketName;
    this.backupReplicaBucketName = this.backup.replicaBucketName;
    this.resticRepository = this.backup.repositoryUrl;
    this.hostBundleSha256 = this.host.bundleSha256;
    this.resticPassword = this.backup.resticPassword;
    if (this.ses !== undefined) {
      this.sesIdentities = [...this.ses.identityNames];
      if (config.ses?.outbound) {
        this.sesMailFromDomains = { ...this.ses.mailFromDomains };
        this.sesSmtpUsername = this.ses.smtpUsername;
      }
      this.sesInboundBucketName = this.ses.inboundBucketName;
      this.sesReceiptRuleSetName = this.ses.receiptRuleSetName;
    }
    const laterSteps = this.dsRecords.apply((ds) => {
      const steps: string[] = [];
      if (config.alertEmail) {
        const what = config.ses?.outbound ? "alarms about the host and SES's bounce and complaint events" : "alarms about the host";
        const subscriptions =
          this.ses?.eventTopic !== undefined
            ? `both subscriptions AWS mailed to ${config.alertEmail} (SES's events come from a topic of their own in ${config.ses?.region})`
            : `the subscription AWS mailed to ${config.alertEmail}`;
        steps.push(`Confirm ${subscriptions}; until then, ${what} are not delivered.`);
      }
      if (ds.length > 0) steps.push(dnssecStep(ds));
      if (config.ses?.inbound) steps.push(sesInboundStep(config.ses.region, this.sesReceiptRuleSetName as string));
      return steps.map((step, i) => `\n${6 + i}. ${step}`).join("");
    });
    const firstStep = config.ses?.outbound
      ? sesSandboxStep(config.ses.region, config.domain)
      : pulumi.interpolate`Ask AWS to lift the port-25 limit: ${PORT_25_REQUEST_URL}
   Elastic IP: ${this.publicIp}; reverse DNS record: ${config.hostname}. Until AWS agrees, outbound mail waits in the queue (two days at most, then it bounces).
   AWS takes days to answer and refuses many new accounts: to send from day one, set sesOutbound (relay through Amazon SES on port 587; see docs/ses.md).`;
    this.nextSteps = pulumi.interpolate`Next steps for ${config.hostname}:
1. ${firstStep}
2. Reverse DNS is already set (${this.publicIp} -> ${config.hostname}): \`dig -x ${this.publicIp} +short\`.
3. Once the A record resolves, the host obtains its Let's Encrypt certificate within 15 minutes:
   \`openssl s_client -connect ${config.hostname}:993 -brief </dev/null\` then names Let's Encrypt as issuer.
4. Mail clients: server ${config.hostname}, IMAP 993 (TLS), SMTP 465 (TLS) or 587 (STARTTLS), the full address as login.
5. A shell without SSH: \`aws ssm start-session --target ${this.instanceId}\`.${laterSteps}`;
    this.registerOutputs({
      publicIp: this.publicIp,
      hostname: this.hostname,
      instanceId: this.instanceId,
      parameterPath: this.parameterPath,
      logGroupName: this.logGroupName,
      dnsRecords: this.dnsRecords,
      backupBucketName: this.backupBucketName,
      // Registered only when it exists: an undefined output draws a warning on every run.
      ...(this.backupReplicaBucketName ? { backupReplicaBucketName: this.backupReplicaBucketName } : {}),
      resticRepository: this.resticRepository,
      resticPassword: this.resticPassword,
      hostBundleSha256: this.hostBundleSha256,
      dsRecords: this.dsRecords,
      nextSteps: this.nextSteps,
      // Registered only when they exist, like the replica's name.
      ...(this.sesIdentities ? { sesIdentities: this.sesIdentities } : {}),
      ...(this.sesSmtpUsername ? { sesMailFromDomains: this.sesMailFromDomains, sesSmtpUsername: this.sesSmtpUsername } : {}),
      ...(this.sesInboundBucketName ? { sesInboundBucketName: this.sesInboundBucketName, sesReceiptRuleSetName: this.sesReceiptRuleSetName } : {}),
    });
  }
}

/** The SES sandbox, with sesOutbound: what it allows, and how to leave it. */
function sesSandboxStep(region: string, domain: string): string {
  return (
    `Outgoing mail leaves through Amazon SES in ${region}. Every account starts in SES's sandbox, in each region: until AWS grants production access there, ` +
    "SES takes mail only for verified recipients and at most 200 messages a day, and what it refuses waits in the host's queue (two days at most, then it bounces). " +
    `Request it in the SES console (${region}) under Account dashboard, Request production access, or:\n` +
    `   \`aws sesv2 put-account-details --region ${region} --production-access-enabled --mail-type TRANSACTIONAL --website-url https://${domain} --use-case-description "…"\`\n` +
    `   The domains' identities verify once their DKIM records resolve: \`aws sesv2 get-email-identity --region ${region} --email-identity ${domain}\`.`
  );
}

/** With sesInbound: SES's MX, and the rule set that replaced any other. */
function sesInboundStep(region: string, ruleSetName: string): string {
  return (
    `Amazon SES (${sesInboundMx(region)}) is the domains' last MX, keeping mail in S3 while the host is away. Its receipt rule set ${ruleSetName} is now the active one in ${region}: ` +
    "an account has one active rule set per region, so any rule set that was active there before is not any more. Check with " +
    `\`aws ses describe-active-receipt-rule-set --region ${region}\`.`
  );
}

function dnssecStep(ds: DsRecord[]): string {
  const lines = ds.map((d) => `\n   ${d.ds}   (key tag ${d.keyTag}, algorithm ${d.algorithm}, digest type ${d.digestType})`);
  return (
    "DNSSEC: add each zone's DS record at the domain's registrar (Cloudflare adds it itself where it is the registrar). " +
    `Until then resolvers treat the zones as unsigned, and senders ignore the TLSA record:${lines.join("")}`
  );
}

/**
 * The core's checks plus those of the component's own args, all reported in one error. An
 * unchecked parameter path ("mailstack/prod", a trailing slash) would give malformed SSM names
 * and an IAM ARN ("…:parametermailstack/prod") that fail only mid-deployment.
 */
function validate(name: string, args: MailStackArgs, opts?: pulumi.ComponentResourceOptions): { config: MailConfig; parameterPath: string } {
  const parameterPath = args.parameterPath ?? defaultParameterPath(name);
  const issues: ConfigIssue[] = [];
  let config: MailConfig | undefined;
  try {
    config = parseConfig(coreInput(args), { region: stackRegion(opts) });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    issues.push(...error.issues);
  }
  for (const message of parameterPathProblems(parameterPath, name, args.parameterPath !== undefined, config)) issues.push({ path: "parameterPath", message });
  if (config !== undefined && config.waitUntilHealthyMinutes > 0 && !checkCommandInstalled()) {
    issues.push({
      path: "waitUntilHealthyMinutes",
      message: "needs the mailstack command in the Pulumi project, which it runs at the end of `pulumi up`: npm install @mailstack/cli, or set 0 to not wait",
    });
  }
  if (typeof args.amiId === "string" && !/^ami-[0-9a-f]{8,17}$/.test(args.amiId)) {
    issues.push({ path: "amiId", message: `${JSON.stringify(args.amiId)} is not an AMI id; write it like ami-0123456789abcdef0` });
  }
  if (config !== undefined && issues.length === 0) return { config, parameterPath };
  throw new MailStackConfigError(issues);
}

/** Whether `npx --no mailstack`, run in the Pulumi project (the program's directory), finds the command. */
function checkCommandInstalled(): boolean {
  try {
    require.resolve("@mailstack/cli/package.json", { paths: [process.cwd()] });
    return true;
  } catch {
    return false;
  }
}

/**
 * The default parameter path: one per project, stack and MailStack, so that two projects with
 * a stack of the same name in one account and region never share one. (Before the project was
 * part of it, the default was `/mailstack/<stack>/<name>`; stacks made then pin that path.)
 */
function defaultParameterPath(name: string): string {
  return `/mailstack/${pulumi.getProject()}/${pulumi.getStack()}/${name}`;
}

/** What SSM allows between the slashes of a parameter name. */
const SSM_LEVEL = /^[A-Za-z0-9_.-]+$/;
/** SSM's limit on a parameter name's levels. */
const SSM_MAX_LEVELS = 15;
/**
 * SSM's limit on a parameter name's length, 1011 characters counting its ARN, less the longest
 * ARN prefix (`arn:aws-us-gov:ssm:<the longest region name>:<account>:parameter`).
 */
const SSM_MAX_NAME_LENGTH = 1011 - "arn:aws-us-gov:ssm:ap-southeast-5:123456789012:parameter".length;
/** S3's limit on an object key, in bytes (a valid path is ASCII: one byte a character). */
const S3_MAX_KEY_LENGTH = 1024;

/**
 * What SSM (and S3, for the host's objects below `host/<path>/`) would refuse in a parameter
 * path, each problem with its fix. The levels and the length count the deepest and longest
 * names mailstack writes below the path, which depend on the configuration: without a valid
 * one only the characters are checked.
 */
function parameterPathProblems(path: string, name: string, given: boolean, config: MailConfig | undefined): string[] {
  // A path of a thousand characters is shown by its ends.
  const shown = JSON.stringify(path.length > 100 ? `${path.slice(0, 60)}…${path.slice(-30)}` : path);
  if (!/^(\/[A-Za-z0-9_.-]+)+$/.test(path)) {
    if (given) return [`${shown} is not an SSM parameter path (a leading slash, none at the end, letters, digits and _ . - between); write it like /mailstack/prod/mail`];
    const ownName = "the MailStack's name";
    const parts: [string, string][] = [
      ["the project name (Pulumi.yaml's name:)", pulumi.getProject()],
      ["the stack name", pulumi.getStack()],
      [ownName, name],
    ];
    const bad = parts.filter(([, value]) => !SSM_LEVEL.test(value));
    const clean = (value: string) => value.replace(/[^A-Za-z0-9_.-]+/g, "-").replace(/^-+|-+$/g, "") || "x";
    const suggestion = `/mailstack/${parts.map(([, value]) => clean(value)).join("/")}`;
    return [
      `the default path ${shown} is not an SSM parameter path: ${bad.map(([what, value]) => `${what} ${JSON.stringify(value)}`).join(" and ")} ` +
        `${bad.length === 1 ? "has" : "have"} characters SSM refuses (it allows letters, digits and _ . - only); set parameterPath, e.g. ${suggestion}` +
        (bad.some(([what]) => what === ownName) ? ", or name the MailStack with letters, digits and _ . - only" : ""),
    ];
  }
  const problems: string[] = [];
  const reserved = /^\/(aws|ssm)/i.exec(path);
  if (reserved) problems.push(`${shown} begins with "${reserved[1]}", which SSM reserves for AWS's own parameters; begin it with another name, e.g. /mailstack${path}`);
  if (config === undefined) return problems;
  const what = given ? shown : `the default path ${shown}`;
  const fix = given ? "" : "; shorten the project, stack or MailStack name, or set parameterPath";
  const levels = (p: string) => p.split("/").filter(Boolean).length;
  const below = [MANIFEST_PARAMETER, HOST_BUNDLE_PARAMETERS.pointer, HOST_BUNDLE_PARAMETERS.status, ...keyFileNames(config).map(keyParameterName)];
  const deepest = below.reduce((a, b) => (levels(b) > levels(a) ? b : a));
  const maxLevels = SSM_MAX_LEVELS - levels(deepest);
  if (levels(path) > maxLevels) {
    problems.push(`${what} has ${levels(path)} levels, and mailstack's parameters go up to ${levels(deepest)} levels below it (${path}/${deepest}); SSM allows ${SSM_MAX_LEVELS} in all, so use at most ${maxLevels}${fix}`);
  }
  const longest = below.reduce((a, b) => (b.length > a.length ? b : a));
  const bundleKey = `${hostObjectsPrefix(path)}/${HOST_OBJECTS.bundles}/${"0".repeat(64)}.json`;
  const maxLength = Math.min(SSM_MAX_NAME_LENGTH - longest.length - 1, S3_MAX_KEY_LENGTH - (bundleKey.length - path.length));
  if (path.length > maxLength) {
    problems.push(
      `${what} is ${path.length} characters; the parameters below it (${longest} the longest) must fit SSM's limit on a name with its ARN, 1011 characters, and the host's objects (host<path>/${HOST_OBJECTS.bundles}/<sha256>.json) S3's 1024: use at most ${maxLength} characters${fix}`,
    );
  }
  return problems;
}

/**
 * The stack's region, against which the core checks the availability zone, the replica and
 * the KMS key: that of the default provider, unknown when the stack is given a provider.
 */
function stackRegion(opts?: pulumi.ComponentResourceOptions): string | undefined {
  if (opts?.provider !== undefined || opts?.providers !== undefined) return undefined;
  return new pulumi.Config("aws").get("region") || process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || undefined;
}

/** The args as the core validates them: outputs stand for values the cloud checks later. */
function coreInput(args: MailStackArgs): unknown {
  const { parameterPath: _path, amiId: _ami, protect: _protect, tags: _tags, ...input } = args;
  return input;
}

function resolveNetwork(args: MailStackArgs, config: MailConfig, parent: pulumi.Resource) {
  const opts = { parent };
  if (args.subnetId !== undefined) {
    const subnet = ec2.getSubnetOutput({ id: args.subnetId }, opts);
    return { subnetId: subnet.id, vpcId: args.vpcId !== undefined ? pulumi.output(args.vpcId) : subnet.vpcId, availabilityZone: subnet.availabilityZone };
  }
  const vpcId = ec2.getVpcOutput({ default: true }, opts).id;
  const availabilityZone =
    config.availabilityZone !== undefined
      ? pulumi.output(config.availabilityZone)
      : getAvailabilityZonesOutput({ state: "available" }, opts).names.apply((names) => names[0]);
  const subnet = ec2.getSubnetOutput(
    { filters: [{ name: "vpc-id", values: [vpcId] }, { name: "availability-zone", values: [availabilityZone] }, { name: "default-for-az", values: ["true"] }] },
    opts,
  );
  return { subnetId: subnet.id, vpcId, availabilityZone };
}
