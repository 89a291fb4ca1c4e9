import * as ipaddr from "ipaddr.js";
import * as v from "valibot";
import { type Architecture, instanceArchitecture } from "./instance-types";
import { checkAddress, checkDomain, domainOf, isWithin } from "./names";

/**
 * What a user writes: the Pulumi stack config of the reference program, the `--config` file
 * of `mailstack plan`, and the args of the `MailStack` component all have this shape, so a
 * field path in an error is the path the user typed.
 *
 * `password` and `passwordHash` are usually Pulumi secrets. The core checks their presence
 * here and their value only when it is a plain string; the component checks secret values
 * with {@link checkPassword} / {@link checkPasswordHash} once they resolve.
 */
export interface MailConfigInput {
  /** Primary mail domain, e.g. example.com. IDNs are accepted and stored as xn-- names. */
  domain: string;
  /** Further domains this server receives and sends mail for. */
  extraDomains?: string[];
  /** Mail host name; default `mail.<domain>`. Must lie within one of the domains. */
  hostname?: string;
  mailboxes: MailboxInput[];
  aliases?: AliasInput[];
  /** Allow aliases to forward to domains this server does not host. Default false. */
  allowExternalForwarding?: boolean;
  /** Where postmaster@ of every domain goes. Default: the first mailbox. */
  postmaster?: string;
  /** Where abuse@ of every domain goes. Default: the postmaster. */
  abuse?: string;
  /** DMARC policy stage. Default quarantine. */
  dmarcPolicy?: "none" | "quarantine" | "reject";
  /** Mailbox or alias that receives DMARC aggregate reports. Default: the postmaster. */
  dmarcReports?: string;
  /** Require strict (exact-domain) SPF and DKIM alignment. Default false (relaxed). */
  dmarcStrictAlignment?: boolean;
  /** TLS on port 25 from other servers: opportunistic (default) or required. */
  inboundTls?: "opportunistic" | "required";
  /** TLS to other servers: dane (default, with a validating resolver), opportunistic or required. */
  outboundTls?: "dane" | "opportunistic" | "required";
  /** Lowest TLS version on port 25. Default TLSv1.2. */
  inboundTlsMinVersion?: "TLSv1.2" | "TLSv1.3";
  /** CIDRs allowed to reach SSH (port 22). Default none: use SSM Session Manager. */
  adminCidrs?: string[];
  /** EC2 instance type. Default t4g.small (arm64, 2 GiB). */
  instanceType?: string;
  /** CPU architecture, only needed for families mailstack does not know. */
  architecture?: Architecture;
  /** Root volume size in GiB. Default 16. */
  rootVolumeGiB?: number;
  /** Mail data volume size in GiB. Default 20. */
  dataVolumeGiB?: number;
  /** Offer POP3S on port 995. Default false. */
  pop3?: boolean;
  /** Largest message accepted, in MiB. Default 50. */
  messageSizeLimitMiB?: number;
  /** DKIM selector that signs outgoing mail. Default "mail". */
  dkimSelector?: string;
  /**
   * Rotation, step 1: a new key published under this selector beside the signing one, not yet
   * signing. Default none. See docs/dns.md for the three-step rotation.
   */
  dkimNextSelector?: string;
  /**
   * Rotation, step 3: the key that signed before `dkimSelector`, still published so that mail
   * signed with it in transit keeps verifying. Default none: remove it to retire that key.
   */
  dkimPreviousSelector?: string;
  /** Further MX hosts you run elsewhere (backup MX), tried after this one. Default none. */
  secondaryMx?: SecondaryMxInput[];
  /**
   * Domains whose SPF record also authorises senders for the mail domains, e.g. amazonses.com.
   * Default none: only the MX hosts may send (`v=spf1 mx -all`).
   */
  spfInclude?: string[];
  /**
   * MTA-STS policy mode served at https://mta-sts.<domain>/.well-known/mta-sts.txt. Default
   * enforce: senders that support MTA-STS deliver only over TLS to a valid certificate of
   * the MX host. `testing` reports failures (TLS-RPT) without refusing; `none` withdraws it.
   */
  mtaSts?: "enforce" | "testing" | "none";
  /**
   * Certificate authorities allowed to issue for the mail host's names (CAA). Default
   * ["letsencrypt.org"], the CA the host uses; an empty list publishes no CAA record.
   */
  caaIssuers?: string[];
  /**
   * Domains (or subdomains) that never send or receive mail: each gets a null MX, `v=spf1 -all`
   * and DMARC p=reject, so nobody can spoof them. Default none.
   */
  nonMailDomains?: string[];
  /**
   * Sign the Cloudflare zones with DNSSEC and publish a TLSA (DANE) record for port 25.
   * Default false. The DS record must then be added at the registrar (Cloudflare shows it).
   */
  dnssec?: boolean;
  /**
   * Extra TXT values by domain, such as `google-site-verification=…` for Google Postmaster
   * Tools. Default none.
   */
  verificationRecords?: Record<string, string[]>;
  /** DNS provider that publishes the records: cloudflare (default) or route53. */
  dnsProvider?: "cloudflare" | "route53";
  /** Route 53 hosted zone ids by domain; domains not listed are looked up by name. */
  route53ZoneIds?: Record<string, string>;
  /** Days a replaced or deleted backup object version is kept. Default 90. */
  backupRetentionDays?: number;
  /**
   * S3 Object Lock default retention for every new object version in the backup bucket (and
   * its replica). Default none: versioning and the host's role already keep a compromised
   * host from erasing history; the lock also stops anyone in the AWS account (GOVERNANCE:
   * anyone without s3:BypassGovernanceRetention; COMPLIANCE: even the root user) from
   * deleting a version younger than `days`. Once enabled, S3 never lets it be turned off.
   */
  backupObjectLock?: BackupObjectLockInput;
  /**
   * Region of a second bucket that S3 replicates every backup object to, e.g. eu-central-1.
   * Default none: one bucket, in the stack's region. Must differ from the stack's region.
   */
  backupReplicaRegion?: string;
  /**
   * ARN of a customer-managed KMS key (in the stack's region) that encrypts the backup
   * bucket. Default: the account's AWS-managed `aws/s3` key, which needs no key policy and
   * costs nothing, but whose use cannot be restricted or audited per key.
   */
  backupKmsKeyArn?: string;
  /**
   * Daily EBS snapshots of the data volume kept, by count. Default 7: a week of whole-volume
   * restore points beside the file-level backups.
   */
  snapshotRetentionDays?: number;
  /**
   * When the host backs up mail and its configuration with restic, as a systemd OnCalendar
   * expression. Default `*-*-* 02:00:00` (daily at 02:00 UTC, started up to 30 minutes later
   * at random; a run missed while the host was down starts at boot). Changing it replaces the
   * instance: the timer is part of the user data.
   */
  backupSchedule?: string;
  /**
   * How many snapshots restic keeps (`forget --keep-daily/-weekly/-monthly`, then `--prune`).
   * Default 7 daily, 4 weekly, 12 monthly. A changed policy reaches the host through SSM,
   * without replacing it.
   */
  backupKeep?: BackupKeep;
  /**
   * Address (preferably at another provider) that receives alarms when the host fails its
   * EC2 status checks (which also trigger automatic recovery or reboot). Default: no alarms.
   */
  alertEmail?: string;
  /** Existing VPC; requires subnetId. Default: the account's default VPC. */
  vpcId?: string;
  /** Existing public subnet for the host. Default: the default subnet of availabilityZone. */
  subnetId?: string;
  /** Availability zone in the default VPC. Default: the region's first zone. */
  availabilityZone?: string;
  /** Cloudflare zone ids by domain; domains not listed are looked up by name. */
  cloudflareZoneIds?: Record<string, string>;
}

/**
 * How each field is written in Pulumi stack config, where every value arrives as a string:
 * `string` fields are taken as they are, the others are JSON.
 */
export const FIELD_KINDS: Record<keyof MailConfigInput, "string" | "json"> = {
  domain: "string",
  extraDomains: "json",
  hostname: "string",
  mailboxes: "json",
  aliases: "json",
  allowExternalForwarding: "json",
  postmaster: "string",
  abuse: "string",
  dmarcPolicy: "string",
  dmarcReports: "string",
  dmarcStrictAlignment: "json",
  inboundTls: "string",
  outboundTls: "string",
  inboundTlsMinVersion: "string",
  adminCidrs: "json",
  instanceType: "string",
  architecture: "string",
  rootVolumeGiB: "json",
  dataVolumeGiB: "json",
  pop3: "json",
  messageSizeLimitMiB: "json",
  dkimSelector: "string",
  dkimNextSelector: "string",
  dkimPreviousSelector: "string",
  secondaryMx: "json",
  spfInclude: "json",
  mtaSts: "string",
  caaIssuers: "json",
  nonMailDomains: "json",
  dnssec: "json",
  verificationRecords: "json",
  dnsProvider: "string",
  route53ZoneIds: "json",
  backupRetentionDays: "json",
  backupObjectLock: "json",
  backupReplicaRegion: "string",
  backupKmsKeyArn: "string",
  snapshotRetentionDays: "json",
  backupSchedule: "string",
  backupKeep: "json",
  alertEmail: "string",
  vpcId: "string",
  subnetId: "string",
  availabilityZone: "string",
  cloudflareZoneIds: "json",
};

export interface MailboxInput {
  address: string;
  /** Plain password (a secret); hashed with bcrypt by the stack. */
  password?: unknown;
  /** Pre-hashed password with its Dovecot scheme prefix, e.g. from `doveadm pw -s BLF-CRYPT`. */
  passwordHash?: unknown;
  /** Storage quota such as 500M, 5G or unlimited. Default 5G. */
  quota?: string;
  /** Further addresses delivered to this mailbox; the mailbox may also send as them. */
  aliases?: string[];
}

export interface SecondaryMxInput {
  /** Host name of the other MX server. */
  host: string;
  /** MX preference; must be above this host's 10. Default 20, then 30, … in list order. */
  priority?: number;
}

export interface BackupObjectLockInput {
  /** GOVERNANCE: principals with s3:BypassGovernanceRetention may still delete; COMPLIANCE: nobody may. */
  mode: "GOVERNANCE" | "COMPLIANCE";
  /** Days each new object version is locked; at most backupRetentionDays. */
  days: number;
}

/** Snapshots restic keeps: the last of each of so many days, weeks and months. */
export interface BackupKeep {
  daily?: number;
  weekly?: number;
  monthly?: number;
}

export interface AliasInput {
  address: string;
  /** Mailboxes, other aliases, or (with allowExternalForwarding) outside addresses. */
  to: string[];
}

/** A validated, normalised configuration: every default applied, every name in ASCII. */
export interface MailConfig {
  domain: string;
  /** All hosted domains, primary first. */
  domains: string[];
  hostname: string;
  mailboxes: Mailbox[];
  /** Every alias, including mailbox aliases and the generated postmaster@/abuse@ ones. */
  aliases: Alias[];
  allowExternalForwarding: boolean;
  postmaster: string;
  abuse: string;
  dmarc: { policy: "none" | "quarantine" | "reject"; reports: string; strictAlignment: boolean };
  tls: {
    inbound: "opportunistic" | "required";
    outbound: "dane" | "opportunistic" | "required";
    inboundMinVersion: "TLSv1.2" | "TLSv1.3";
  };
  adminCidrs: string[];
  instanceType: string;
  architecture: Architecture;
  rootVolumeGiB: number;
  dataVolumeGiB: number;
  pop3: boolean;
  messageSizeLimitMiB: number;
  /** Selector that signs outgoing mail. */
  dkimSelector: string;
  /** Every published DKIM selector: the signing one first, then the next and the previous. */
  dkimSelectors: string[];
  dkimNextSelector?: string;
  dkimPreviousSelector?: string;
  /** MX hosts by preference, this host first. */
  mx: { host: string; priority: number }[];
  spfIncludes: string[];
  mtaSts: "enforce" | "testing" | "none";
  caaIssuers: string[];
  nonMailDomains: string[];
  dnssec: boolean;
  /** Verification TXT values, in input order. */
  verificationRecords: { domain: string; value: string }[];
  dnsProvider: "cloudflare" | "route53";
  backupRetentionDays: number;
  backupObjectLock?: { mode: "GOVERNANCE" | "COMPLIANCE"; days: number };
  backupReplicaRegion?: string;
  snapshotRetentionDays: number;
  /** systemd OnCalendar expression of the backup timer. */
  backupSchedule: string;
  backupKeep: Required<BackupKeep>;
  alertEmail?: string;
  availabilityZone?: string;
}

export interface Mailbox {
  address: string;
  /** Where the secret comes from; the value itself never enters a MailConfig. */
  credential: "password" | "passwordHash";
  /** Quota in MiB; undefined means unlimited. */
  quotaMiB?: number;
  /** Position in the input's `mailboxes`, for error paths about its secret. */
  index: number;
}

export interface Alias {
  address: string;
  to: string[];
  /** Where it came from, for messages and for deciding who may send as it. */
  origin: "alias" | "mailbox" | "generated";
}

export interface ConfigIssue {
  /** Field path as the user wrote it, e.g. `mailboxes[2].address`. */
  path: string;
  message: string;
}

/** Every problem with a configuration at once, each naming its field and the fix. */
export class ConfigError extends Error {
  constructor(readonly issues: ConfigIssue[]) {
    super(
      `invalid mailstack configuration (${issues.length} problem${issues.length === 1 ? "" : "s"}):\n` +
        issues.map((i) => `  ${i.path || "(config)"}: ${i.message}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

/**
 * A string checked against `pattern`, or a value that is not known yet (a Pulumi output from
 * another resource): the core leaves those to the cloud provider.
 */
function deferrable(pattern: RegExp, message: string) {
  return v.pipe(
    v.unknown(),
    v.check(
      (value) => (typeof value === "string" ? pattern.test(value) : value !== null && typeof value === "object"),
      (issue) => (typeof issue.input === "string" ? `${JSON.stringify(issue.input)} ${message}` : `must be a string, not ${describe(issue.input)}`),
    ),
  );
}

/** A secret: a string, or a value not known yet (a Pulumi output) that the caller checks later. */
function secretValue() {
  return v.pipe(
    v.unknown(),
    // null is how YAML writes an empty value: treated as not set, and reported as required.
    v.check(
      (value) => value === null || typeof value === "string" || typeof value === "object",
      (issue) => `must be a string, not ${describe(issue.input)}`,
    ),
  );
}

const integer = (min: number, max: number) => v.optional(v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max)));
const matching = (pattern: RegExp, message: string) =>
  v.optional(v.pipe(v.string(), v.check((value) => pattern.test(value), (issue) => `${JSON.stringify(issue.input)} ${message}`)));

/** An AWS region name such as eu-west-1 or us-gov-west-1. */
export const AWS_REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;
/** A KMS key ARN; aliases are refused because IAM cannot scope a grant to a key by its alias. */
export const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:([a-z]{2}(?:-[a-z]+)+-\d+):\d{12}:key\/(?:mrk-)?[0-9a-f-]{32,36}$/;

const MAILBOX_FIELDS = {
  address: v.string(),
  password: v.optional(secretValue()),
  passwordHash: v.optional(secretValue()),
  quota: v.optional(v.string()),
  aliases: v.optional(v.array(v.string())),
};
const ALIAS_FIELDS = { address: v.string(), to: v.array(v.string()) };
const SECONDARY_MX_FIELDS = { host: v.string(), priority: integer(0, 65535) };
const selector = matching(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, "must be one DNS label: lower-case letters, digits, inner hyphens");
const OBJECT_LOCK_FIELDS = { mode: v.picklist(["GOVERNANCE", "COMPLIANCE"]), days: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(3650)) };
const BACKUP_KEEP_FIELDS = { daily: integer(0, 1000), weekly: integer(0, 1000), monthly: integer(0, 1000) };

// Plain objects: unknown keys are reported by unknownFields(), every one of them, where a
// strict object would stop at the first.
const FIELDS = {
  domain: v.string(),
  extraDomains: v.optional(v.array(v.string())),
  hostname: v.optional(v.string()),
  mailboxes: v.array(v.object(MAILBOX_FIELDS)),
  aliases: v.optional(v.array(v.object(ALIAS_FIELDS))),
  allowExternalForwarding: v.optional(v.boolean()),
  postmaster: v.optional(v.string()),
  abuse: v.optional(v.string()),
  dmarcPolicy: v.optional(v.picklist(["none", "quarantine", "reject"])),
  dmarcReports: v.optional(v.string()),
  dmarcStrictAlignment: v.optional(v.boolean()),
  inboundTls: v.optional(v.picklist(["opportunistic", "required"])),
  outboundTls: v.optional(v.picklist(["dane", "opportunistic", "required"])),
  inboundTlsMinVersion: v.optional(v.picklist(["TLSv1.2", "TLSv1.3"])),
  adminCidrs: v.optional(v.array(v.string())),
  instanceType: v.optional(v.string()),
  architecture: v.optional(v.picklist(["arm64", "x86_64"])),
  rootVolumeGiB: integer(8, 1024),
  dataVolumeGiB: integer(1, 16384),
  pop3: v.optional(v.boolean()),
  messageSizeLimitMiB: integer(1, 1024),
  dkimSelector: selector,
  dkimNextSelector: selector,
  dkimPreviousSelector: selector,
  secondaryMx: v.optional(v.array(v.object(SECONDARY_MX_FIELDS))),
  spfInclude: v.optional(v.array(v.string())),
  mtaSts: v.optional(v.picklist(["enforce", "testing", "none"])),
  caaIssuers: v.optional(v.array(v.string())),
  nonMailDomains: v.optional(v.array(v.string())),
  dnssec: v.optional(v.boolean()),
  verificationRecords: v.optional(v.record(v.string(), v.array(v.string()))),
  dnsProvider: v.optional(v.picklist(["cloudflare", "route53"])),
  route53ZoneIds: v.optional(v.record(v.string(), deferrable(/^Z[0-9A-Z]{1,31}$/, "must be a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ"))),
  backupRetentionDays: integer(1, 3650),
  backupObjectLock: v.optional(v.object(OBJECT_LOCK_FIELDS)),
  backupReplicaRegion: matching(AWS_REGION, "is not an AWS region; write it like eu-central-1"),
  backupKmsKeyArn: v.optional(deferrable(KMS_KEY_ARN, "is not a KMS key ARN; write it like arn:aws:kms:eu-west-1:123456789012:key/<key id> (a key, not an alias)")),
  snapshotRetentionDays: integer(1, 365),
  // One line of systemd's calendar syntax; a newline or "=" could add settings to the timer.
  // Whether systemd understands it is checked by systemd-analyze in the host tests.
  backupSchedule: matching(/^[A-Za-z0-9*:.,/~ -]{1,100}$/, "is not a systemd OnCalendar expression; write e.g. \"*-*-* 02:00:00\" or daily"),
  backupKeep: v.optional(v.object(BACKUP_KEEP_FIELDS)),
  alertEmail: v.optional(v.string()),
  vpcId: v.optional(deferrable(/^vpc-[0-9a-f]{8,17}$/, "must look like vpc-0123456789abcdef0")),
  subnetId: v.optional(deferrable(/^subnet-[0-9a-f]{8,17}$/, "must look like subnet-0123456789abcdef0")),
  availabilityZone: matching(/^[a-z]{2}(-[a-z]+)+-\d[a-z]$/, "must look like us-east-1a"),
  cloudflareZoneIds: v.optional(v.record(v.string(), deferrable(/^[0-9a-f]{32}$/, "must be a 32-character hex zone id"))),
};

/** Top-level field names, for Pulumi config readers and "did you mean" hints. */
export const CONFIG_FIELDS = Object.keys(FIELDS) as (keyof MailConfigInput)[];

const schema = v.object(FIELDS);

export const DEFAULTS = {
  instanceType: "t4g.small",
  rootVolumeGiB: 16,
  dataVolumeGiB: 20,
  messageSizeLimitMiB: 50,
  dkimSelector: "mail",
  backupRetentionDays: 90,
  snapshotRetentionDays: 7,
  backupSchedule: "*-*-* 02:00:00",
  backupKeep: { daily: 7, weekly: 4, monthly: 12 },
  quota: "5G",
  dmarcPolicy: "quarantine",
  mtaSts: "enforce",
  caaIssuers: ["letsencrypt.org"],
} as const;

/** MX preference of the mail host itself; secondary MX hosts come after it. */
export const PRIMARY_MX_PRIORITY = 10;
const SPF_MAX_INCLUDES = 9;

/** Validates and normalises a configuration, or throws a {@link ConfigError} listing every problem. */
export function parseConfig(input: unknown): MailConfig {
  // valibot takes a list for an object with no keys; say what is wrong instead.
  if (Array.isArray(input)) throw new ConfigError([{ path: "", message: `must be an object, not ${describe(input)}` }]);
  const unknown = unknownFields(input);
  const shaped = v.safeParse(schema, input);
  if (!shaped.success || unknown.length > 0) throw new ConfigError([...unknown, ...(shaped.issues ?? []).map(fromSchemaIssue)]);
  return new Checker(shaped.output as MailConfigInput).run();
}

/** An issue for a key that is not a field, with the nearest known name as a hint. */
export function unknownField(path: string, key: string, known: readonly string[]): ConfigIssue {
  const near = closest(key, known);
  const hint = near ? ` Did you mean "${near}"?` : "";
  return { path, message: `is not a known field.${hint} Known fields: ${known.join(", ")}` };
}

/** Every key that is not a field, at the top level and in each mailbox and alias. */
function unknownFields(input: unknown): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const check = (value: unknown, at: PropertyKey[], fields: object) => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return;
    const known = Object.keys(fields);
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) issues.push(unknownField(formatPath([...at, key]), key, known));
    }
  };
  check(input, [], FIELDS);
  const record = (typeof input === "object" && input !== null ? input : {}) as Record<string, unknown>;
  check(record.backupKeep, ["backupKeep"], BACKUP_KEEP_FIELDS);
  for (const [list, fields] of [["mailboxes", MAILBOX_FIELDS], ["aliases", ALIAS_FIELDS], ["secondaryMx", SECONDARY_MX_FIELDS]] as const) {
    const items = record[list];
    if (Array.isArray(items)) items.forEach((item, i) => check(item, [list, i], fields));
  }
  check(record.backupObjectLock, ["backupObjectLock"], OBJECT_LOCK_FIELDS);
  return issues;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out;
}

type SchemaIssue = v.InferIssue<typeof schema>;

function fromSchemaIssue(issue: SchemaIssue): ConfigIssue {
  const keys = (issue.path ?? []).map((item) => item.key as PropertyKey);
  const path = formatPath(keys);
  if (issue.type === "object" && issue.input === undefined && keys.length > 0) return { path, message: "is required" };
  switch (issue.type) {
    case "string":
    case "number":
    case "boolean":
    case "array":
    case "record":
    case "object": {
      const expected = issue.type === "record" ? "object" : issue.type;
      if (issue.input === undefined) return { path, message: `is required (${expected})` };
      return { path, message: `must be ${article(expected)}, not ${describe(issue.input)}` };
    }
    case "integer":
      return { path, message: `must be an integer, not ${describe(issue.input)}` };
    case "picklist":
      return { path, message: `must be one of ${String(issue.expected).replace(/^\(|\)$/g, "").split(" | ").join(", ")}` };
    case "min_value":
      return { path, message: `must be at least ${String(issue.expected).replace(">=", "")}` };
    case "max_value":
      return { path, message: `must be at most ${String(issue.expected).replace("<=", "")}` };
    default:
      return { path, message: issue.message };
  }
}

function describe(value: unknown): string {
  if (value === undefined) return "undefined";
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "string") return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value)}`;
  if (typeof value === "object") return "an object";
  return `${typeof value} ${JSON.stringify(value)}`;
}

function article(expected: string): string {
  if (expected === "array") return "a list";
  if (expected === "object") return "an object";
  if (expected === "int") return "an integer";
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

const BCRYPT_MAX_BYTES = 72;
export const MIN_PASSWORD_LENGTH = 12;

/** Why a plain password is unusable, or undefined when it is fine. */
export function checkPassword(password: unknown, address: string): string | undefined {
  if (typeof password !== "string") return "must be a string";
  if ([...password].length < MIN_PASSWORD_LENGTH) {
    return `is shorter than ${MIN_PASSWORD_LENGTH} characters; use a longer passphrase`;
  }
  if (Buffer.byteLength(password, "utf8") > BCRYPT_MAX_BYTES) {
    return `is longer than ${BCRYPT_MAX_BYTES} bytes, past which bcrypt ignores the rest; shorten it`;
  }
  const name = address.slice(0, address.indexOf("@"));
  if (name.length >= 3 && password.toLowerCase().includes(name)) {
    return "contains the mailbox name; choose a password unrelated to the address";
  }
  return undefined;
}

/** Dovecot schemes Ubuntu 24.04's Dovecot verifies and that resist offline guessing. */
const HASH_FORMATS: Record<string, RegExp> = {
  "BLF-CRYPT": /^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$/,
  "SHA512-CRYPT": /^\$6\$(rounds=\d+\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{86}$/,
  "SHA256-CRYPT": /^\$5\$(rounds=\d+\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{43}$/,
  ARGON2ID: /^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/,
  ARGON2I: /^\$argon2i\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/,
};
/** Longest accepted pre-hashed password, so the users file can be split at plan time. */
export const MAX_PASSWORD_HASH_LENGTH = 160;

/** Why a pre-hashed password is unusable, or undefined when it is fine. */
export function checkPasswordHash(hash: unknown): string | undefined {
  if (typeof hash !== "string") return "must be a string";
  const match = /^\{([A-Z0-9-]+)\}(.*)$/.exec(hash.trim());
  if (!match) {
    return "must start with its scheme, e.g. {BLF-CRYPT}$2b$…; create one with `doveadm pw -s BLF-CRYPT`";
  }
  const [, scheme, body] = match;
  const format = HASH_FORMATS[scheme];
  if (!format) {
    return `uses scheme {${scheme}}, which is weak or unsupported; use one of ${Object.keys(HASH_FORMATS).map((s) => `{${s}}`).join(", ")}`;
  }
  if (!format.test(body)) return `is not a well-formed {${scheme}} hash`;
  if (hash.trim().length > MAX_PASSWORD_HASH_LENGTH) return `is longer than ${MAX_PASSWORD_HASH_LENGTH} characters`;
  return undefined;
}

const QUOTA = /^(\d+(?:\.\d+)?)\s*([MGT])i?B?$/i;

function quotaMiB(quota: string): number | undefined | "invalid" {
  if (quota.trim().toLowerCase() === "unlimited") return undefined;
  const match = QUOTA.exec(quota.trim());
  if (!match) return "invalid";
  const units = { M: 1, G: 1024, T: 1024 * 1024 }[match[2].toUpperCase() as "M" | "G" | "T"];
  const mib = Math.round(Number(match[1]) * units);
  return mib >= 1 ? mib : "invalid";
}

class Checker {
  private readonly issues: ConfigIssue[] = [];

  constructor(private readonly input: MailConfigInput) {}

  private fail(path: string, message: string): void {
    this.issues.push({ path, message });
  }

  private domain(path: string, raw: string, options: { serviceLabels?: boolean } = {}): string | undefined {
    const checked = checkDomain(raw, options);
    if (checked.ok) return checked.value;
    this.fail(path, checked.error);
    return undefined;
  }

  private address(path: string, raw: string): string | undefined {
    const checked = checkAddress(raw);
    if (checked.ok) return checked.value;
    this.fail(path, checked.error);
    return undefined;
  }

  run(): MailConfig {
    const input = this.input;
    const domain = this.domain("domain", input.domain);
    const domains: string[] = domain ? [domain] : [];
    (input.extraDomains ?? []).forEach((raw, i) => {
      const d = this.domain(`extraDomains[${i}]`, raw);
      if (d === undefined) return;
      if (domains.includes(d)) this.fail(`extraDomains[${i}]`, `"${raw}" is listed twice (or is the primary domain); remove it`);
      else domains.push(d);
    });
    const hosted = (address: string) => domains.includes(domainOf(address));

    let hostname = domain ? `mail.${domain}` : "";
    if (input.hostname !== undefined) {
      const h = this.domain("hostname", input.hostname);
      if (h !== undefined) {
        hostname = h;
        if (domains.includes(h)) {
          this.fail("hostname", `"${input.hostname}" is a mail domain itself; use a name below it such as mail.${h}, leaving the apex for your website`);
        } else if (!domains.some((d) => isWithin(h, d))) {
          this.fail("hostname", `"${input.hostname}" is not within any mail domain (${domains.join(", ")}), so its A record cannot be published; use e.g. mail.${domain}`);
        }
      }
    }

    // Every address that receives mail here, to catch duplicates across mailboxes and aliases.
    const owners = new Map<string, string>();
    const claim = (address: string, path: string) => {
      const previous = owners.get(address);
      if (previous) {
        this.fail(path, `"${address}" is already used by ${previous}; each address may be a mailbox or an alias once`);
        return false;
      }
      owners.set(address, path);
      return true;
    };

    const mailboxes: Mailbox[] = [];
    const aliases: Alias[] = [];
    if (input.mailboxes.length === 0) {
      this.fail("mailboxes", "is empty; add at least one mailbox, e.g. { address: you@" + (domain ?? "example.com") + " }");
    }
    input.mailboxes.forEach((m, i) => {
      const path = `mailboxes[${i}]`;
      const address = this.address(`${path}.address`, m.address);
      const hasPassword = m.password !== undefined && m.password !== null;
      const hasHash = m.passwordHash !== undefined && m.passwordHash !== null;
      if (hasPassword && hasHash) this.fail(path, "sets both password and passwordHash; keep one");
      if (!hasPassword && !hasHash) {
        this.fail(`${path}.password`, "is required (or passwordHash); set it with `pulumi config set --secret --path 'mailboxes[" + i + "].password'`");
      }
      if (address && typeof m.password === "string") {
        const problem = checkPassword(m.password, address);
        if (problem) this.fail(`${path}.password`, problem);
      }
      if (typeof m.passwordHash === "string") {
        const problem = checkPasswordHash(m.passwordHash);
        if (problem) this.fail(`${path}.passwordHash`, problem);
      }
      const quota = quotaMiB(m.quota ?? DEFAULTS.quota);
      if (quota === "invalid") {
        this.fail(`${path}.quota`, `"${m.quota}" is not a size; write e.g. 500M, 5G, 1T or unlimited`);
      }
      if (address === undefined) return;
      if (!hosted(address)) {
        this.fail(`${path}.address`, `"${m.address}" is not in a hosted domain (${domains.join(", ")}); add its domain to extraDomains`);
      }
      if (!claim(address, `${path}.address`)) return;
      mailboxes.push({ address, credential: hasHash ? "passwordHash" : "password", quotaMiB: quota === "invalid" ? undefined : quota, index: i });
      (m.aliases ?? []).forEach((raw, j) => {
        const aliasPath = `${path}.aliases[${j}]`;
        const alias = this.address(aliasPath, raw);
        if (alias === undefined) return;
        if (!hosted(alias)) {
          this.fail(aliasPath, `"${raw}" is not in a hosted domain (${domains.join(", ")}); add its domain to extraDomains`);
          return;
        }
        if (claim(alias, aliasPath)) aliases.push({ address: alias, to: [address], origin: "mailbox" });
      });
    });

    const explicitAliases: { alias: Alias; path: string; targetPaths: Map<string, string> }[] = [];
    (input.aliases ?? []).forEach((a, i) => {
      const path = `aliases[${i}]`;
      if (a.address.trim().startsWith("@")) {
        this.fail(`${path}.address`, `"${a.address}" is a catch-all, which collects spam for every guessed name; list the addresses you need`);
        return;
      }
      const address = this.address(`${path}.address`, a.address);
      if (a.to.length === 0) this.fail(`${path}.to`, "is empty; list at least one destination address");
      const to: string[] = [];
      const targetPaths = new Map<string, string>();
      a.to.forEach((raw, j) => {
        const target = this.address(`${path}.to[${j}]`, raw);
        if (target === undefined) return;
        if (target === address) this.fail(`${path}.to[${j}]`, `"${raw}" forwards the alias to itself; remove it`);
        else if (to.includes(target)) this.fail(`${path}.to[${j}]`, `"${raw}" is listed twice; remove one`);
        else {
          to.push(target);
          targetPaths.set(target, `${path}.to[${j}]`);
        }
      });
      if (address === undefined) return;
      if (!hosted(address)) {
        this.fail(`${path}.address`, `"${a.address}" is not in a hosted domain (${domains.join(", ")}); add its domain to extraDomains`);
        return;
      }
      if (!claim(address, `${path}.address`)) return;
      const alias: Alias = { address, to, origin: "alias" };
      aliases.push(alias);
      explicitAliases.push({ alias, path, targetPaths });
    });

    const allowExternalForwarding = input.allowExternalForwarding ?? false;
    const mailboxSet = new Set(mailboxes.map((m) => m.address));
    const aliasMap = new Map(aliases.map((a) => [a.address, a]));
    for (const { alias, targetPaths } of explicitAliases) {
      alias.to.forEach((target) => {
        const targetPath = targetPaths.get(target) ?? "aliases";
        if (hosted(target)) {
          if (!mailboxSet.has(target) && !aliasMap.has(target) && !isGeneratedLocal(target)) {
            this.fail(targetPath, `"${target}" is neither a mailbox nor an alias here, so mail to ${alias.address} would bounce; add it or fix the spelling`);
          }
        } else if (!allowExternalForwarding) {
          this.fail(targetPath, `"${target}" is outside the hosted domains; set allowExternalForwarding: true to forward mail off this server`);
        }
      });
    }

    const firstMailbox = mailboxes[0]?.address;
    const resolves = (address: string) => mailboxSet.has(address) || aliasMap.has(address);
    // `generated`: local parts whose aliases are generated on every domain before this field is used.
    const recipient = (field: "postmaster" | "abuse" | "dmarcReports", fallback: string | undefined, generated: string[] = []) => {
      const raw = input[field];
      if (raw === undefined) return fallback;
      const address = this.address(field, raw);
      if (address === undefined) return fallback;
      if (!hosted(address)) {
        this.fail(field, `"${raw}" is outside the hosted domains; use a mailbox or alias on ${domains.join(", ")}`);
      } else if (!resolves(address) && !generated.includes(address.slice(0, address.indexOf("@")))) {
        this.fail(field, `"${raw}" is neither a mailbox nor an alias; add it to mailboxes or aliases`);
      }
      return address;
    };
    const postmaster = recipient("postmaster", firstMailbox) ?? "";
    const abuse = recipient("abuse", postmaster, ["postmaster"]) ?? "";
    const dmarcReports = recipient("dmarcReports", postmaster, ["postmaster", "abuse"]) ?? "";
    // RFC 5321 requires postmaster@ and RFC 2142 abuse@ on every domain that receives mail.
    for (const d of domains) {
      for (const [local, target] of [["postmaster", postmaster], ["abuse", abuse]] as const) {
        const address = `${local}@${d}`;
        if (!owners.has(address) && target !== "" && target !== address) {
          owners.set(address, "generated");
          aliases.push({ address, to: [target], origin: "generated" });
        }
      }
    }
    // After the generated aliases: an alias to postmaster@ while postmaster is that alias loops too.
    for (const loop of findLoops(aliases)) {
      const first = explicitAliases.find((e) => loop.includes(e.alias.address));
      this.fail(first ? `${first.path}.to` : "aliases", `alias loop ${loop.join(" → ")} → ${loop[0]}; break the cycle`);
    }

    const adminCidrs: string[] = [];
    (input.adminCidrs ?? []).forEach((raw, i) => {
      const cidr = this.cidr(`adminCidrs[${i}]`, raw);
      if (cidr && !adminCidrs.includes(cidr)) adminCidrs.push(cidr);
    });

    const instanceType = input.instanceType ?? DEFAULTS.instanceType;
    const arch = instanceArchitecture(instanceType, input.architecture);
    if (!arch.ok) this.fail("instanceType", arch.error);

    let alertEmail: string | undefined;
    if (input.alertEmail !== undefined) alertEmail = this.address("alertEmail", input.alertEmail);

    const backupRetentionDays = input.backupRetentionDays ?? DEFAULTS.backupRetentionDays;
    if (input.backupObjectLock && input.backupObjectLock.days > backupRetentionDays) {
      this.fail(
        "backupObjectLock.days",
        `locks each version for ${input.backupObjectLock.days} days, longer than backupRetentionDays (${backupRetentionDays}), so old versions would outlive the retention and keep costing; set backupRetentionDays to at least ${input.backupObjectLock.days} or shorten the lock`,
      );
    }

    if (input.vpcId && !input.subnetId) {
      this.fail("subnetId", "is required when vpcId is set: name the public subnet the mail host goes into");
    }
    if (input.subnetId && input.availabilityZone) {
      this.fail("availabilityZone", "conflicts with subnetId, which already fixes the zone; remove one");
    }

    const dkimSelector = input.dkimSelector ?? DEFAULTS.dkimSelector;
    const dkimSelectors = [dkimSelector];
    for (const field of ["dkimNextSelector", "dkimPreviousSelector"] as const) {
      const value = input[field];
      if (value === undefined) continue;
      if (dkimSelectors.includes(value)) {
        this.fail(field, `"${value}" is already published (dkimSelector${dkimSelectors.length > 1 ? " or dkimNextSelector" : ""}); each key needs its own selector`);
      } else dkimSelectors.push(value);
    }

    const mx = [{ host: hostname, priority: PRIMARY_MX_PRIORITY }];
    (input.secondaryMx ?? []).forEach((entry, i) => {
      const host = this.domain(`secondaryMx[${i}].host`, entry.host);
      const priority = entry.priority ?? PRIMARY_MX_PRIORITY + 10 * (i + 1);
      if (entry.priority !== undefined && entry.priority <= PRIMARY_MX_PRIORITY) {
        this.fail(`secondaryMx[${i}].priority`, `${entry.priority} would put it before this host (${PRIMARY_MX_PRIORITY}); use a number above ${PRIMARY_MX_PRIORITY}`);
      }
      if (host === undefined) return;
      if (mx.some((m) => m.host === host)) this.fail(`secondaryMx[${i}].host`, `"${entry.host}" is already an MX host; remove it`);
      else mx.push({ host, priority });
    });

    const spfIncludes: string[] = [];
    (input.spfInclude ?? []).forEach((raw, i) => {
      const d = this.domain(`spfInclude[${i}]`, raw.replace(/^include:/, ""), { serviceLabels: true });
      if (d !== undefined && !spfIncludes.includes(d)) spfIncludes.push(d);
    });
    // RFC 7208 §4.6.4: ten DNS lookups at most; `mx` costs one, each include at least one.
    if (spfIncludes.length > SPF_MAX_INCLUDES) {
      this.fail("spfInclude", `lists ${spfIncludes.length} domains; SPF allows 10 DNS lookups and \`mx\` takes one, so keep at most ${SPF_MAX_INCLUDES} (fewer if they include others)`);
    }

    const caaIssuers: string[] = [];
    (input.caaIssuers ?? [...DEFAULTS.caaIssuers]).forEach((raw, i) => {
      const d = this.domain(`caaIssuers[${i}]`, raw);
      if (d !== undefined && !caaIssuers.includes(d)) caaIssuers.push(d);
    });
    if (input.caaIssuers !== undefined && caaIssuers.length > 0 && !caaIssuers.includes("letsencrypt.org")) {
      this.fail("caaIssuers", `leaves out letsencrypt.org, the CA the host's certificate comes from, so renewals would fail; add it or set [] to publish no CAA record`);
    }

    const nonMailDomains: string[] = [];
    (input.nonMailDomains ?? []).forEach((raw, i) => {
      const d = this.domain(`nonMailDomains[${i}]`, raw);
      if (d === undefined) return;
      if (domains.includes(d) || d === hostname) this.fail(`nonMailDomains[${i}]`, `"${raw}" receives or sends mail here; remove it from nonMailDomains`);
      else if (nonMailDomains.includes(d)) this.fail(`nonMailDomains[${i}]`, `"${raw}" is listed twice; remove one`);
      else nonMailDomains.push(d);
    });

    for (const field of ["cloudflareZoneIds", "route53ZoneIds"] as const) {
      for (const raw of Object.keys(input[field] ?? {})) {
        const d = this.domain(`${field}.${raw}`, raw);
        if (d !== undefined && !domains.includes(d) && !nonMailDomains.includes(d)) {
          this.fail(`${field}.${raw}`, `"${raw}" is neither a mail domain (${domains.join(", ")}) nor in nonMailDomains; remove it or add it to extraDomains`);
        }
      }
    }

    const verificationRecords: { domain: string; value: string }[] = [];
    for (const [raw, values] of Object.entries(input.verificationRecords ?? {})) {
      const d = this.domain(`verificationRecords.${raw}`, raw);
      if (d !== undefined && !domains.includes(d) && !nonMailDomains.includes(d)) {
        this.fail(`verificationRecords.${raw}`, `"${raw}" is neither a mail domain nor in nonMailDomains; verification records go on domains the stack manages`);
      }
      values.forEach((value, i) => {
        if (!/^[\x21-\x7e][\x20-\x7e]{0,253}[\x21-\x7e]$/.test(value)) {
          this.fail(`verificationRecords.${raw}[${i}]`, "must be 2–255 printable ASCII characters, e.g. google-site-verification=… as the postmaster tool shows it");
        } else if (d !== undefined) verificationRecords.push({ domain: d, value });
      });
    }

    const dnsProvider = input.dnsProvider ?? "cloudflare";
    const dnssec = input.dnssec ?? false;
    if (dnssec && dnsProvider !== "cloudflare") {
      this.fail("dnssec", "is only managed on Cloudflare; with Route 53, enable DNSSEC signing in Route 53 yourself (it needs a KMS key in us-east-1) and leave this false");
    }
    const zoneIdsField = dnsProvider === "cloudflare" ? "route53ZoneIds" : "cloudflareZoneIds";
    if (input[zoneIdsField] !== undefined) {
      this.fail(zoneIdsField, `does not apply with dnsProvider ${dnsProvider}; remove it${dnsProvider === "cloudflare" ? ' or set dnsProvider: "route53"' : ""}`);
    }

    const keep = input.backupKeep ?? {};
    const backupKeep = {
      daily: keep.daily ?? DEFAULTS.backupKeep.daily,
      weekly: keep.weekly ?? DEFAULTS.backupKeep.weekly,
      monthly: keep.monthly ?? DEFAULTS.backupKeep.monthly,
    };
    if (backupKeep.daily + backupKeep.weekly + backupKeep.monthly === 0) {
      this.fail("backupKeep", "keeps no snapshot at all, so every backup would be pruned; keep at least one, e.g. { daily: 7 }");
    }

    if (this.issues.length > 0) throw new ConfigError(this.issues);
    return {
      domain: domains[0],
      domains,
      hostname,
      mailboxes,
      // Code-unit order, not the locale's: rendered files must not depend on where they are rendered.
      aliases: aliases.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0)),
      allowExternalForwarding,
      postmaster,
      abuse,
      dmarc: {
        policy: input.dmarcPolicy ?? DEFAULTS.dmarcPolicy,
        reports: dmarcReports,
        strictAlignment: input.dmarcStrictAlignment ?? false,
      },
      tls: {
        inbound: input.inboundTls ?? "opportunistic",
        outbound: input.outboundTls ?? "dane",
        inboundMinVersion: input.inboundTlsMinVersion ?? "TLSv1.2",
      },
      adminCidrs,
      instanceType,
      architecture: arch.ok ? arch.architecture : "arm64",
      rootVolumeGiB: input.rootVolumeGiB ?? DEFAULTS.rootVolumeGiB,
      dataVolumeGiB: input.dataVolumeGiB ?? DEFAULTS.dataVolumeGiB,
      pop3: input.pop3 ?? false,
      messageSizeLimitMiB: input.messageSizeLimitMiB ?? DEFAULTS.messageSizeLimitMiB,
      dkimSelector,
      dkimSelectors,
      dkimNextSelector: input.dkimNextSelector,
      dkimPreviousSelector: input.dkimPreviousSelector,
      mx,
      spfIncludes,
      mtaSts: input.mtaSts ?? DEFAULTS.mtaSts,
      caaIssuers,
      nonMailDomains,
      dnssec,
      verificationRecords,
      dnsProvider,
      backupRetentionDays,
      backupObjectLock: input.backupObjectLock && { mode: input.backupObjectLock.mode, days: input.backupObjectLock.days },
      backupReplicaRegion: input.backupReplicaRegion,
      snapshotRetentionDays: input.snapshotRetentionDays ?? DEFAULTS.snapshotRetentionDays,
      backupSchedule: input.backupSchedule ?? DEFAULTS.backupSchedule,
      backupKeep,
      alertEmail,
      availabilityZone: input.availabilityZone,
    };
  }

  private cidr(path: string, raw: string): string | undefined {
    let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
    try {
      parsed = ipaddr.parseCIDR(raw.trim());
    } catch {
      this.fail(path, `"${raw}" is not a CIDR block; write e.g. 203.0.113.7/32 or 2001:db8::/48`);
      return undefined;
    }
    const [address, prefix] = parsed;
    if (prefix === 0) {
      this.fail(path, `"${raw}" opens SSH to the whole internet; list your own address (e.g. 203.0.113.7/32) or use SSM Session Manager`);
      return undefined;
    }
    const network =
      address.kind() === "ipv4"
        ? ipaddr.IPv4.networkAddressFromCIDR(raw.trim())
        : ipaddr.IPv6.networkAddressFromCIDR(raw.trim());
    if (network.toString() !== address.toString()) {
      this.fail(path, `"${raw}" has host bits set; did you mean ${network.toString()}/${prefix}?`);
      return undefined;
    }
    return `${address.toString()}/${prefix}`;
  }
}

function isGeneratedLocal(address: string): boolean {
  const local = address.slice(0, address.indexOf("@"));
  return local === "postmaster" || local === "abuse";
}

/** Cycles among aliases (depth-first, linear in aliases and targets), each reported once. */
function findLoops(aliases: Alias[]): string[][] {
  const next = new Map(aliases.map((a) => [a.address, a.to]));
  const state = new Map<string, "open" | "done">();
  const loops: string[][] = [];
  const trail: string[] = [];
  const visit = (address: string) => {
    state.set(address, "open");
    trail.push(address);
    for (const target of next.get(address) ?? []) {
      const seen = state.get(target);
      if (seen === "open") loops.push(trail.slice(trail.indexOf(target)));
      else if (seen === undefined && next.has(target)) visit(target);
    }
    trail.pop();
    state.set(address, "done");
  };
  for (const a of aliases) if (!state.has(a.address)) visit(a.address);
  return loops;
}
