import { createHash } from "node:crypto";
import { ConfigError, type ConfigIssue, type DnsRecord, type MailConfig, type MailConfigInput, parseConfig } from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";
import * as ec2 from "@pulumi/aws/ec2";
import { getAvailabilityZonesOutput } from "@pulumi/aws/getAvailabilityZones";
import { DkimKey } from "./dkim-key";
import { MailAlerts } from "./mail-alerts";
import { MailBackup } from "./mail-backup";
import { MailDns } from "./mail-dns";
import { MailFirewall } from "./mail-firewall";
import { MailHost } from "./mail-host";
import { type MailboxCredential, MailParameters } from "./mail-parameters";
import { MailStackConfigError } from "./stack-config";

export interface MailboxArgs extends MailboxCredential {
  /** The mailbox's address; also its login name. */
  address: string;
  /** Storage quota such as 500M, 5G or unlimited. Default 5G. */
  quota?: string;
  /** Further addresses delivered to this mailbox, which it may also send as. */
  aliases?: string[];
}

/**
 * Everything a mail deployment needs, in the shape of the reference program's stack config
 * (see MailConfigInput for every field and its default). Passwords and resource ids may be
 * Pulumi outputs; everything that decides which resources exist is plain.
 */
export interface MailStackArgs extends Omit<MailConfigInput, "mailboxes" | "vpcId" | "subnetId" | "cloudflareZoneIds"> {
  mailboxes: MailboxArgs[];
  /** Existing VPC; requires subnetId. Default: the account's default VPC. */
  vpcId?: pulumi.Input<string>;
  /** Existing public subnet. Default: the default VPC's default subnet in availabilityZone. */
  subnetId?: pulumi.Input<string>;
  /** Cloudflare zone ids by mail domain. Default: looked up by name. */
  cloudflareZoneIds?: Record<string, pulumi.Input<string>>;
  /**
   * SSM path for the runtime files. Default `/mailstack/<stack>/<name>`, unique per stack
   * and per MailStack, which is also all the host's role may read.
   */
  parameterPath?: string;
  /** Pin the host's AMI. Default: the newest Ubuntu 24.04 image, looked up once. */
  amiId?: pulumi.Input<string>;
  /**
   * Protect the data volume, the Elastic IP and the backup bucket from deletion. Default
   * true; set false only for throwaway stacks.
   */
  protect?: boolean;
  /** Tags added to every AWS resource that takes tags. */
  tags?: Record<string, string>;
}

/** The AWS "remove email sending limitations" form, which also records the reverse DNS. */
export const PORT_25_REQUEST_URL = "https://aws-portal.amazon.com/gp/aws/html-forms-controller/contactus/ec2-email-limit-rdns-request";

/**
 * A complete mail service: host, firewall, DNS, DKIM, runtime parameters and backup bucket,
 * from one configuration that is validated before any resource is declared.
 */
export class MailStack extends pulumi.ComponentResource {
  /** The validated configuration every child was built from. */
  readonly config: MailConfig;
  readonly host: MailHost;
  readonly firewall: MailFirewall;
  readonly dns: MailDns;
  readonly dkim: DkimKey;
  readonly parameters: MailParameters;
  readonly backup: MailBackup;
  /** Status-check alarms e-mailed to alertEmail; undefined when alertEmail is not set. */
  readonly alerts?: MailAlerts;
  readonly publicIp: pulumi.Output<string>;
  readonly hostname: string;
  readonly instanceId: pulumi.Output<string>;
  readonly dnsRecords: pulumi.Output<DnsRecord[]>;
  readonly backupBucketName: pulumi.Output<string>;
  /** What to do after the first `pulumi up`, with this deployment's values filled in. */
  readonly nextSteps: pulumi.Output<string>;

  constructor(name: string, args: MailStackArgs, opts?: pulumi.ComponentResourceOptions) {
    // Every bad field is reported at once, before any resource exists, this one included.
    const { config, parameterPath } = validate(name, args);
    super("mailstack:index:MailStack", name, {}, opts);
    this.config = config;
    this.hostname = config.hostname;
    const parent = { parent: this };
    const tags = { ...args.tags, "mailstack:stack": `${pulumi.getProject()}/${pulumi.getStack()}` };
    const protect = args.protect ?? true;

    const network = resolveNetwork(args, config, this);
    this.firewall = new MailFirewall(`${name}-firewall`, { config, vpcId: network.vpcId, tags }, parent);
    this.dkim = new DkimKey(`${name}-dkim`, { selector: config.dkimSelector }, parent);

    // Interim, until the stack has a random password of its own (issue 5, cloud side): a
    // secret derived from the DKIM key, so it stays the same from one deployment to the next.
    const resticPassword = pulumi.secret(this.dkim.privateKeyPem.apply((pem) => createHash("sha256").update(`mailstack restic\n${pem}`).digest("base64url")));
    this.parameters = new MailParameters(
      `${name}-parameters`,
      { config, path: parameterPath, credentials: args.mailboxes, dkimPrivateKeyPem: this.dkim.privateKeyPem, resticPassword, tags },
      parent,
    );
    this.backup = new MailBackup(`${name}-backup`, { retentionDays: config.backupRetentionDays, protect, tags }, parent);
    this.host = new MailHost(
      `${name}-host`,
      {
        config,
        subnetId: network.subnetId,
        availabilityZone: network.availabilityZone,
        securityGroupIds: [this.firewall.securityGroupId],
        parameterPath,
        backupBucket: this.backup.bucketName,
        amiId: args.amiId,
        protect,
        tags,
      },
      // The host reads its parameters at first boot.
      { parent: this, dependsOn: [this.parameters] },
    );
    this.dns = new MailDns(
      `${name}-dns`,
      { config, ipv4: this.host.publicIp, dkimPublicKey: this.dkim.publicKey, zoneIds: args.cloudflareZoneIds },
      parent,
    );
    // AWS checks that the forward record exists before it sets the reverse one.
    new ec2.EipDomainName(
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
    }

    this.publicIp = this.host.publicIp;
    this.instanceId = this.host.instanceId;
    this.dnsRecords = this.dns.records;
    this.backupBucketName = this.backup.bucketName;
    const alertStep = config.alertEmail
      ? `\n6. Confirm the subscription AWS mailed to ${config.alertEmail}; until then, alarms about the host are not delivered.`
      : "";
    this.nextSteps = pulumi.interpolate`Next steps for ${config.hostname}:
1. Ask AWS to lift the port-25 limit: ${PORT_25_REQUEST_URL}
   Elastic IP: ${this.publicIp}; reverse DNS record: ${config.hostname}. Until AWS agrees, outbound mail waits in the queue (two days at most, then it bounces).
2. Reverse DNS is already set (${this.publicIp} -> ${config.hostname}): \`dig -x ${this.publicIp} +short\`.
3. Once the A record resolves, the host obtains its Let's Encrypt certificate within 15 minutes:
   \`openssl s_client -connect ${config.hostname}:993 -brief </dev/null\` then names Let's Encrypt as issuer.
4. Mail clients: server ${config.hostname}, IMAP 993 (TLS), SMTP 465 (TLS) or 587 (STARTTLS), the full address as login.
5. A shell without SSH: \`aws ssm start-session --target ${this.instanceId}\`.${alertStep}`;
    this.registerOutputs({
      publicIp: this.publicIp,
      hostname: this.hostname,
      instanceId: this.instanceId,
      dnsRecords: this.dnsRecords,
      backupBucketName: this.backupBucketName,
      nextSteps: this.nextSteps,
    });
  }
}

/**
 * The core's checks plus those of the component's own args, all reported in one error. An
 * unchecked parameter path ("mailstack/prod", a trailing slash) would give malformed SSM names
 * and an IAM ARN ("…:parametermailstack/prod") that fail only mid-deployment.
 */
function validate(name: string, args: MailStackArgs): { config: MailConfig; parameterPath: string } {
  const parameterPath = args.parameterPath ?? `/mailstack/${pulumi.getStack()}/${name}`;
  const issues: ConfigIssue[] = [];
  if (!/^(\/[A-Za-z0-9_.-]+)+$/.test(parameterPath)) {
    const fix = args.parameterPath !== undefined ? "write it like /mailstack/prod/mail" : "name the MailStack with letters, digits and _ . - only, or set parameterPath";
    issues.push({ path: "parameterPath", message: `${JSON.stringify(parameterPath)} is not an SSM parameter path (a leading slash, none at the end, letters, digits and _ . - between); ${fix}` });
  }
  if (typeof args.amiId === "string" && !/^ami-[0-9a-f]{8,17}$/.test(args.amiId)) {
    issues.push({ path: "amiId", message: `${JSON.stringify(args.amiId)} is not an AMI id; write it like ami-0123456789abcdef0` });
  }
  try {
    const config = parseConfig(coreInput(args));
    if (issues.length === 0) return { config, parameterPath };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    issues.unshift(...error.issues);
  }
  throw new MailStackConfigError(issues);
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
