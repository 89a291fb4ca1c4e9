import * as v from "valibot";
import { bucketProblem } from "../backup";
import { LOG_RETENTION_DAYS, MONITORING_ALARMS, type MonitoringAlarmKey, thresholdProblem } from "../monitoring";
import { checkOnCalendar } from "./calendar";
import type { LdapInput, MailConfigInput } from "./input";
import { describe, formatPath, fromSchemaIssue, type ConfigIssue, unknownField } from "./issues";
import { attributeProblem, certificateProblem, dnProblem, ldapFilterProblem, ldapUrlProblem } from "./ldap-syntax";
import { quotaProblem } from "./quota";
import { checkAvailabilityZone, checkRegion, KMS_KEY_ARN } from "./regions";

// The field table: for every field, how its value is checked on its own (the schema), how it
// is written in Pulumi stack config (kind) and what leaving it out means (default). Checks
// between fields are the rules in ./rules; Pulumi.yaml's `config:` block is rendered from
// this table (./pulumi-yaml.ts).

/**
 * How a field is written in Pulumi stack config, where every value arrives as a string:
 * `string` as it is, the others as JSON. Pulumi.yaml declares all but `structured` fields,
 * because it cannot declare the type of an object or of a list of objects.
 */
export type StackKind = "string" | "integer" | "boolean" | "list" | "structured";

interface Field {
  readonly schema: v.GenericSchema;
  /** The value taken when the field is left out; absent when there is none or it is derived. */
  readonly default?: unknown;
  /** The keys of an object value. */
  readonly fields?: Table;
  /** The keys of each object in a list value. */
  readonly items?: Table;
}
type Table = Readonly<Record<string, Field>>;

export interface TopField extends Field {
  readonly kind: StackKind;
  /** Pulumi.yaml's one-line description; structured fields are not declared there. */
  readonly summary?: string;
}

/** An integer field, with its bounds at hand for components that take the same value. */
function integer<const D extends number | undefined>(min: number, max: number, defaultValue: D) {
  return { schema: v.optional(v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max))), min, max, default: defaultValue, kind: "integer" as const };
}

/** A string field whose value `problem` finds nothing wrong with; its answer is the message. */
function checked(problem: (value: string) => string | undefined) {
  return v.optional(
    v.pipe(
      v.string(),
      v.rawCheck<string>(({ dataset, addIssue }) => {
        const message = dataset.typed ? problem(dataset.value) : undefined;
        if (message) addIssue({ message });
      }),
    ),
  );
}

/** A problem finder for strings that must match `pattern`. */
const mismatch = (pattern: RegExp, message: string) => (value: string) => (pattern.test(value) ? undefined : `${JSON.stringify(value)} ${message}`);
const matching = (pattern: RegExp, message: string) => checked(mismatch(pattern, message));

/**
 * A string that `problem` finds nothing wrong with, or a value that is not known yet (a Pulumi
 * output from another resource): the core leaves those to the cloud provider.
 */
function deferrable(problem: (value: string) => string | undefined) {
  return v.pipe(
    v.unknown(),
    v.rawCheck(({ dataset, addIssue }) => {
      const value = dataset.value;
      const message = typeof value === "string" ? problem(value) : value !== null && typeof value === "object" ? undefined : `must be a string, not ${describe(value)}`;
      if (message) addIssue({ message });
    }),
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

const schemas = (table: Table) => Object.fromEntries(Object.entries(table).map(([key, field]) => [key, field.schema]));
const object = <const T extends Table>(fields: T) => ({ schema: v.optional(v.object(schemas(fields))), fields });
const list = <const T extends Table>(items: T, required = false) => {
  const schema = v.array(v.object(schemas(items)));
  return { schema: required ? schema : v.optional(schema), items };
};
const strings = { schema: v.optional(v.array(v.string())), default: [], kind: "list" } as const;
const selector = matching(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, "must be one DNS label: lower-case letters, digits, inner hyphens");

const SENDING_LIMITS = {
  messagesPerHour: integer(1, 100000, 100),
  recipientsPerHour: integer(1, 100000, 300),
  recipientsPerMessage: integer(1, 1000, 100),
} as const satisfies Table;
/**
 * A mailbox's own hourly limits: the stack's bounds, no default (the stack's applies). Its
 * recipientsPerMessage is a known field only so that the rule mailboxSendingLimits can say
 * why every value is refused.
 */
const MAILBOX_SENDING_LIMITS = {
  messagesPerHour: integer(SENDING_LIMITS.messagesPerHour.min, SENDING_LIMITS.messagesPerHour.max, undefined),
  recipientsPerHour: integer(SENDING_LIMITS.recipientsPerHour.min, SENDING_LIMITS.recipientsPerHour.max, undefined),
  recipientsPerMessage: { schema: v.optional(v.number()) },
} as const satisfies Table;

/** Most app passwords a mailbox may have: Dovecot tries one passdb per slot (see dovecotConf). */
export const MAX_APP_PASSWORDS = 8;
/** The protocols an app password may name, in the order a default lists them. */
export const APP_PASSWORD_SERVICES = ["imap", "pop3", "submission"] as const;
const APP_PASSWORD = {
  name: { schema: v.string() },
  password: { schema: v.optional(secretValue()) },
  passwordHash: { schema: v.optional(secretValue()) },
  services: { schema: v.optional(v.array(v.picklist(APP_PASSWORD_SERVICES))) },
} as const satisfies Table;

const MAILBOX = {
  address: { schema: v.string() },
  password: { schema: v.optional(secretValue()) },
  passwordHash: { schema: v.optional(secretValue()) },
  quota: { schema: v.optional(v.string()), default: "5G" },
  aliases: { schema: v.optional(v.array(v.string())), default: [] },
  sendingLimits: object(MAILBOX_SENDING_LIMITS),
  enabled: { schema: v.optional(v.boolean()), default: true },
  disabledReply: { schema: v.optional(v.string()), default: "Mailbox disabled, not accepting messages" },
  appPasswords: { ...list(APP_PASSWORD), default: [] },
  requireAppPasswords: { schema: v.optional(v.boolean()), default: false },
} as const satisfies Table;
const ALIAS = { address: { schema: v.string() }, to: { schema: v.array(v.string()) } } as const satisfies Table;
const SECONDARY_MX = { host: { schema: v.string() }, priority: integer(0, 65535, undefined) } as const satisfies Table;
/** Bounds of `backupObjectLock.days`, also MailBackup's `objectLock.days`. */
export const OBJECT_LOCK_DAYS = {
  /** Shortest lock in days. */
  min: 1,
  /** Longest lock in days: ten years, the longest backupRetentionDays, which the lock may not exceed. */
  max: 3650,
} as const;
const OBJECT_LOCK = {
  mode: { schema: v.picklist(["GOVERNANCE", "COMPLIANCE"]) },
  days: { schema: v.pipe(v.number(), v.integer(), v.minValue(OBJECT_LOCK_DAYS.min), v.maxValue(OBJECT_LOCK_DAYS.max)) },
} as const satisfies Table;
const BACKUP_KEEP = { daily: integer(0, 1000, 7), weekly: integer(0, 1000, 4), monthly: integer(0, 1000, 12) } as const satisfies Table;
/**
 * The directory's settings; the user filter's default depends on the flavor and the domains'
 * on the hosted domains, so the rule ldapDirectory sets them.
 */
const LDAP = {
  url: { schema: checked(ldapUrlProblem).wrapped },
  startTls: { schema: v.optional(v.boolean()), default: false },
  flavor: { schema: v.optional(v.picklist(["openldap", "activedirectory"])), default: "openldap" },
  bindDn: { schema: checked(dnProblem).wrapped },
  bindPassword: { schema: v.optional(secretValue()) },
  baseDn: { schema: checked(dnProblem).wrapped },
  userFilter: { schema: checked(ldapFilterProblem) },
  mailAttribute: { schema: checked(attributeProblem), default: "mail" },
  caCertificate: { schema: checked(certificateProblem) },
  domains: { schema: v.optional(v.array(v.string())) },
  cacheSeconds: integer(1, 86400, 300),
  quota: { schema: checked(quotaProblem), default: MAILBOX.quota.default },
} as const satisfies Table;

/** An integer that must be one of `values`, with the nearest one suggested. */
function oneOf<const D extends number>(values: readonly number[], defaultValue: D, what: string) {
  const nearest = (n: number) => values.reduce((a, b) => (Math.abs(b - n) < Math.abs(a - n) ? b : a));
  const schema = v.optional(
    v.pipe(
      v.number(),
      v.integer(),
      v.check(
        (n) => values.includes(n),
        (issue) => `must be one of ${values.join(", ")} (${what}); the nearest is ${nearest(issue.input as number)}`,
      ),
    ),
  );
  return { schema, min: values[0], max: values[values.length - 1], default: defaultValue, kind: "integer" as const };
}

/**
 * An alarm's setting: a boolean, or an object whose threshold the alarm accepts. Checked by hand
 * rather than as a union, whose error would only say that neither shape fits.
 */
function alarmSetting(key: MonitoringAlarmKey): Field {
  const schema = v.optional(
    v.pipe(
      v.unknown(),
      v.rawCheck(({ dataset, addIssue }) => {
        const value = dataset.value;
        if (typeof value === "boolean") return;
        if (typeof value !== "object" || value === null || Array.isArray(value)) {
          addIssue({ message: `must be false (off), true (on, the default) or { threshold: N }, not ${describe(value)}` });
          return;
        }
        const threshold = (value as { threshold?: unknown }).threshold;
        const message = threshold === undefined ? undefined : thresholdProblem(key, threshold);
        if (message) addIssue({ message, path: [{ type: "object", origin: "value", input: value as Record<string, unknown>, key: "threshold", value: threshold }] });
      }),
    ),
  );
  // The threshold's own schema is the check above; listing it lets unknownFields refuse its neighbours.
  return { schema, fields: { threshold: { schema: v.unknown() } } };
}
const ALARMS = Object.fromEntries(Object.keys(MONITORING_ALARMS).map((key) => [key, alarmSetting(key as MonitoringAlarmKey)])) as Record<MonitoringAlarmKey, Field>;

export const FIELDS = {
  domain: { schema: v.string(), kind: "string", summary: "Primary mail domain, e.g. example.com (IDNs are accepted)." },
  extraDomains: { ...strings, summary: "Further domains this server receives and sends mail for." },
  hostname: { schema: v.optional(v.string()), kind: "string", summary: "Mail host name; empty means mail.<domain>. Must lie within one of the domains." },
  mailboxes: { ...list(MAILBOX, true), kind: "structured" },
  aliases: { ...list(ALIAS), kind: "structured" },
  catchAll: { schema: v.optional(v.record(v.string(), v.string())), kind: "structured" },
  allowExternalForwarding: { schema: v.optional(v.boolean()), default: false, kind: "boolean", summary: "Allow aliases to forward to domains this server does not host." },
  postmaster: { schema: v.optional(v.string()), kind: "string", summary: "Where postmaster@ of every domain goes; empty means the first mailbox." },
  abuse: { schema: v.optional(v.string()), kind: "string", summary: "Where abuse@ of every domain goes; empty means the postmaster." },
  dmarcPolicy: { schema: v.optional(v.picklist(["none", "quarantine", "reject"])), default: "quarantine", kind: "string", summary: "DMARC stage, none | quarantine | reject." },
  dmarcReports: { schema: v.optional(v.string()), kind: "string", summary: "Mailbox or alias receiving DMARC aggregate reports; empty means the postmaster." },
  dmarcStrictAlignment: { schema: v.optional(v.boolean()), default: false, kind: "boolean", summary: "Require exact-domain SPF and DKIM alignment instead of relaxed." },
  inboundTls: { schema: v.optional(v.picklist(["opportunistic", "required"])), default: "opportunistic", kind: "string", summary: "TLS on port 25 from other servers, opportunistic | required." },
  outboundTls: { schema: v.optional(v.picklist(["dane", "opportunistic", "required"])), default: "dane", kind: "string", summary: "TLS to other servers, dane | opportunistic | required." },
  inboundTlsMinVersion: { schema: v.optional(v.picklist(["TLSv1.2", "TLSv1.3"])), default: "TLSv1.2", kind: "string", summary: "Lowest TLS version accepted on port 25, TLSv1.2 | TLSv1.3." },
  adminCidrs: { ...strings, summary: "CIDRs allowed to reach SSH; none means no SSH (use SSM Session Manager)." },
  instanceType: {
    schema: v.optional(v.string()),
    default: "t4g.small",
    kind: "string",
    summary: "EC2 instance type (not .nano or .micro); the Ubuntu image is looked up for its architecture when the host is created.",
  },
  architecture: { schema: v.optional(v.picklist(["arm64", "x86_64"])), kind: "string", summary: "arm64 | x86_64, only for instance families mailstack does not know; empty means derived." },
  rootVolumeGiB: { ...integer(8, 1024, 16), summary: "Root volume size in GiB." },
  dataVolumeGiB: { ...integer(1, 16384, 20), summary: "Mail data volume size in GiB (mail, queue, certificates)." },
  pop3: { schema: v.optional(v.boolean()), default: false, kind: "boolean", summary: "Offer POP3S on port 995." },
  messageSizeLimitMiB: { ...integer(1, 1024, 50), summary: "Largest message accepted, in MiB." },
  dkimSelector: { schema: selector, default: "mail", kind: "string", summary: "DKIM selector that signs outgoing mail." },
  dkimNextSelector: { schema: selector, kind: "string", summary: "Rotation step 1, a new key published beside the signing one, not yet signing; empty means none." },
  dkimPreviousSelector: { schema: selector, kind: "string", summary: "Rotation step 3, the key that signed before dkimSelector, still published for mail in transit; empty means none." },
  secondaryMx: { ...list(SECONDARY_MX), kind: "structured" },
  spfInclude: { ...strings, summary: "Domains whose SPF also authorises senders for the mail domains (e.g. amazonses.com); none means only the MX hosts." },
  mtaSts: { schema: v.optional(v.picklist(["enforce", "testing", "none"])), default: "enforce", kind: "string", summary: "MTA-STS mode, enforce | testing | none." },
  caaIssuers: {
    ...strings,
    default: ["letsencrypt.org"],
    summary: "CAs allowed to issue for the mail host (CAA); must include letsencrypt.org, or be empty for no CAA record.",
  },
  nonMailDomains: { ...strings, summary: "Domains that never send or receive mail; each gets a null MX, v=spf1 -all and DMARC p=reject." },
  dnssec: {
    schema: v.optional(v.boolean()),
    default: false,
    kind: "boolean",
    summary: "Sign the Cloudflare zones (DNSSEC) and publish a TLSA record for port 25; add the DS records from the outputs at the registrar.",
  },
  verificationRecords: { schema: v.optional(v.record(v.string(), v.array(v.string()))), kind: "structured" },
  dnsProvider: { schema: v.optional(v.picklist(["cloudflare", "route53"])), default: "cloudflare", kind: "string", summary: "Where the records are published, cloudflare | route53." },
  route53ZoneIds: {
    schema: v.optional(v.record(v.string(), deferrable(mismatch(/^Z[0-9A-Z]{1,31}$/, "must be a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ")))),
    kind: "structured",
  },
  backupBucket: {
    schema: v.optional(deferrable(bucketProblem)),
    kind: "string",
    summary: "Existing S3 bucket (name or ARN, stack's region) for the backups; empty means a new bucket made by mailstack.",
  },
  backupRetentionDays: { ...integer(1, 3650, 90), summary: "Days replaced or deleted backup versions are kept." },
  backupObjectLock: { ...object(OBJECT_LOCK), kind: "structured" },
  backupReplicaRegion: { schema: checked(checkRegion), kind: "string", summary: "Region of a replica of the backup bucket (not the stack's region); empty means no replica." },
  backupKmsKeyArn: {
    schema: v.optional(deferrable(mismatch(KMS_KEY_ARN, "is not a KMS key ARN; write it like arn:aws:kms:eu-west-1:123456789012:key/<key id> (a key, not an alias)"))),
    kind: "string",
    summary: "Customer-managed KMS key ARN (stack's region) for the backup bucket; empty means the AWS-managed aws/s3 key.",
  },
  snapshotRetentionDays: { ...integer(1, 365, 7), summary: "Daily EBS snapshots of the data volume kept." },
  backupSchedule: {
    schema: checked(checkOnCalendar),
    default: "*-*-* 02:00:00",
    kind: "string",
    summary: "When the host backs up mail with restic, as a systemd OnCalendar expression (UTC).",
  },
  // A period left out keeps its own default.
  backupKeep: { ...object(BACKUP_KEEP), default: defaultsOf(BACKUP_KEEP), kind: "structured" },
  sendingLimits: { ...object(SENDING_LIMITS), default: defaultsOf(SENDING_LIMITS), kind: "structured" },
  alertEmail: { schema: v.optional(v.string()), kind: "string", summary: "Address (preferably at another provider) that gets the host's alarms; empty means no alarms." },
  logRetentionDays: { ...oneOf(LOG_RETENTION_DAYS, 30, "the retention periods CloudWatch Logs accepts"), summary: "Days the host's log group in CloudWatch Logs keeps its events." },
  waitUntilHealthyMinutes: {
    ...integer(0, 240, 0),
    summary: "Minutes `pulumi up` waits, at its end, for `mailstack check` to pass on the host this deployment set up; 0 means no wait.",
  },
  healthCheckSkip: {
    schema: v.optional(
      v.array(
        v.pipe(
          v.string(),
          v.check((id) => /^[A-Za-z0-9][A-Za-z0-9._*:-]*$/.test(id), (issue) => `${JSON.stringify(issue.input)} must be a check id or its prefix, like port:25 or dnsbl`),
        ),
      ),
    ),
    default: [],
    kind: "list",
    summary: "Checks that waitUntilHealthyMinutes leaves out, by id or prefix, e.g. port:25 where the machine running Pulumi cannot open port 25.",
  },
  sesOutbound: {
    schema: v.optional(v.boolean()),
    default: false,
    kind: "boolean",
    summary: "Send outgoing mail through Amazon SES (port 587) instead of port 25, e.g. while AWS blocks port 25 on the account.",
  },
  sesInbound: {
    schema: v.optional(v.boolean()),
    default: false,
    kind: "boolean",
    summary: "Amazon SES as the last MX: keeps mail in S3 while the host is away; the host imports it when back.",
  },
  sesRegion: { schema: checked(checkRegion), kind: "string", summary: "Region of SES for sesOutbound and sesInbound; empty means the stack's region." },
  sesMailFromSubdomain: { schema: selector, default: "bounce", kind: "string", summary: "Label of each mail domain's MAIL FROM domain with sesOutbound, e.g. bounce (bounce.<domain>)." },
  // valibot's object takes a list too; a list of alarm names is a likely mistake, and would mean nothing.
  alarms: {
    schema: v.optional(v.pipe(v.custom((value) => !Array.isArray(value), "must be an object of alarm settings, not a list"), v.object(schemas(ALARMS)))),
    fields: ALARMS,
    kind: "structured",
  },
  vpcId: { schema: v.optional(deferrable(mismatch(/^vpc-[0-9a-f]{8,17}$/, "must look like vpc-0123456789abcdef0"))), kind: "string", summary: "Existing VPC (requires subnetId); empty means the default VPC." },
  subnetId: {
    schema: v.optional(deferrable(mismatch(/^subnet-[0-9a-f]{8,17}$/, "must look like subnet-0123456789abcdef0"))),
    kind: "string",
    summary: "Existing public subnet for the host; empty means the default subnet.",
  },
  availabilityZone: { schema: checked(checkAvailabilityZone), kind: "string", summary: "Zone in the default VPC; empty means the region's first zone." },
  cloudflareZoneIds: { schema: v.optional(v.record(v.string(), deferrable(mismatch(/^[0-9a-f]{32}$/, "must be a 32-character hex zone id")))), kind: "structured" },
  ldap: { ...object(LDAP), kind: "structured" },
} as const satisfies { [K in keyof MailConfigInput]-?: TopField };

type DefaultsOf<T> = { -readonly [K in keyof T as T[K] extends { default: infer D } ? (undefined extends D ? never : K) : never]: T[K] extends { default: infer D } ? D : never };

function defaultsOf<const T extends Table>(table: T): DefaultsOf<T> {
  return Object.fromEntries(Object.entries(table).flatMap(([key, field]) => (field.default === undefined ? [] : [[key, field.default]]))) as DefaultsOf<T>;
}

/** Top-level field names, for Pulumi config readers and "did you mean" hints. */
export const CONFIG_FIELDS = Object.keys(FIELDS) as (keyof MailConfigInput)[];

/** How each field is written in Pulumi stack config: `string` as it is, `json` parsed. */
export const FIELD_KINDS = Object.fromEntries(CONFIG_FIELDS.map((key) => [key, FIELDS[key].kind === "string" ? "string" : "json"])) as Record<
  keyof MailConfigInput,
  "string" | "json"
>;

/**
 * The value each {@link MailConfigInput} field that has a default takes when left out, and
 * the mailbox quota's. What each value means is documented on the field of the same name.
 *
 * The values come from the field table; this type spells them out for the reader, and the
 * build fails if the two differ.
 */
export interface Defaults {
  /** {@link MailConfigInput.extraDomains}: no further domains. */
  extraDomains: readonly [];
  /** {@link MailConfigInput.allowExternalForwarding}: alias targets must be hosted here. */
  allowExternalForwarding: false;
  /** {@link MailConfigInput.dmarcPolicy}, the DMARC `p=`. */
  dmarcPolicy: "quarantine";
  /** {@link MailConfigInput.dmarcStrictAlignment}: relaxed alignment. */
  dmarcStrictAlignment: false;
  /** {@link MailConfigInput.inboundTls}, on port 25. */
  inboundTls: "opportunistic";
  /** {@link MailConfigInput.outboundTls}: DANE where the recipient publishes TLSA, else opportunistic. */
  outboundTls: "dane";
  /** {@link MailConfigInput.inboundTlsMinVersion}, on port 25. */
  inboundTlsMinVersion: "TLSv1.2";
  /** {@link MailConfigInput.adminCidrs}: no SSH. */
  adminCidrs: readonly [];
  /** {@link MailConfigInput.instanceType}, an EC2 instance type. */
  instanceType: "t4g.small";
  /** {@link MailConfigInput.rootVolumeGiB}, in GiB. */
  rootVolumeGiB: 16;
  /** {@link MailConfigInput.dataVolumeGiB}, in GiB. */
  dataVolumeGiB: 20;
  /** {@link MailConfigInput.pop3}: IMAPS only. */
  pop3: false;
  /** {@link MailConfigInput.messageSizeLimitMiB}, in MiB. */
  messageSizeLimitMiB: 50;
  /** {@link MailConfigInput.dkimSelector}, a DNS label. */
  dkimSelector: "mail";
  /** {@link MailConfigInput.spfInclude}: SPF names only the MX hosts. */
  spfInclude: readonly [];
  /** {@link MailConfigInput.mtaSts}, the MTA-STS mode. */
  mtaSts: "enforce";
  /** {@link MailConfigInput.caaIssuers}, CA domains. */
  caaIssuers: readonly ["letsencrypt.org"];
  /** {@link MailConfigInput.nonMailDomains}: none. */
  nonMailDomains: readonly [];
  /** {@link MailConfigInput.dnssec}: zones left unsigned, no TLSA record. */
  dnssec: false;
  /** {@link MailConfigInput.dnsProvider}, the service that publishes the records. */
  dnsProvider: "cloudflare";
  /** {@link MailConfigInput.backupRetentionDays}, in days. */
  backupRetentionDays: 90;
  /** {@link MailConfigInput.snapshotRetentionDays}, a count of daily snapshots. */
  snapshotRetentionDays: 7;
  /** {@link MailConfigInput.backupSchedule}, a systemd OnCalendar expression in UTC. */
  backupSchedule: "*-*-* 02:00:00";
  /** {@link MailConfigInput.backupKeep}; a period left out takes its own default. */
  backupKeep: {
    /** {@link BackupKeep.daily}, in days. */
    daily: 7;
    /** {@link BackupKeep.weekly}, in weeks. */
    weekly: 4;
    /** {@link BackupKeep.monthly}, in months. */
    monthly: 12;
  };
  /** {@link MailConfigInput.logRetentionDays}, in days. */
  logRetentionDays: 30;
  /** {@link MailConfigInput.waitUntilHealthyMinutes}: no wait. */
  waitUntilHealthyMinutes: 0;
  /** {@link MailConfigInput.healthCheckSkip}: every check. */
  healthCheckSkip: readonly [];
  /** {@link MailConfigInput.sesOutbound}: the host delivers on port 25 itself. */
  sesOutbound: false;
  /** {@link MailConfigInput.sesInbound}: no SES MX. */
  sesInbound: false;
  /** {@link MailConfigInput.sesMailFromSubdomain}, a DNS label. */
  sesMailFromSubdomain: "bounce";
  /** {@link MailConfigInput.sendingLimits}; a limit left out takes its own default. */
  sendingLimits: {
    /** {@link SendingLimits.messagesPerHour}. */
    messagesPerHour: 100;
    /** {@link SendingLimits.recipientsPerHour}. */
    recipientsPerHour: 300;
    /** {@link SendingLimits.recipientsPerMessage}. */
    recipientsPerMessage: 100;
  };
  /** {@link MailboxInput.quota} of every mailbox, binary units: 5 GiB. */
  quota: "5G";
}

/** Mutually assignable: the same keys, and values of the same types. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? B : never) : never;
const tableDefaults = { ...defaultsOf(FIELDS), quota: MAILBOX.quota.default };

/** Every field's default, and the mailbox quota's. */
export const DEFAULTS: Defaults = tableDefaults satisfies Same<Defaults, typeof tableDefaults>;

/** Bounds and default of a number that a component takes too, so both refuse the same values. */
export interface Range {
  /** Smallest value accepted. */
  readonly min: number;
  /** Largest value accepted. */
  readonly max: number;
  /** The value taken when it is left out. */
  readonly default: number;
}
const range = (field: { min: number; max: number; default: number }): Range => ({ min: field.min, max: field.max, default: field.default });
/** `snapshotRetentionDays`, also MailSnapshots' `retentionDays`. */
export const SNAPSHOT_RETENTION_DAYS = range(FIELDS.snapshotRetentionDays);
/** `backupRetentionDays`, also MailBackup's `retentionDays`. */
export const BACKUP_RETENTION_DAYS = range(FIELDS.backupRetentionDays);

/**
 * What is wrong with an `alarms` value on its own (unknown alarms or keys, settings, thresholds),
 * each at its path below `alarms`, for a component that takes it outside a configuration.
 */
export function alarmSettingsIssues(alarms: unknown): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  collectUnknown({ alarms }, { alarms: FIELDS.alarms }, [], issues);
  const shaped = v.safeParse(v.object({ alarms: FIELDS.alarms.schema }), { alarms });
  return [...issues, ...(shaped.issues ?? []).map(fromSchemaIssue)];
}

/** The whole configuration's shape; unknown keys are reported by unknownFields instead. */
export const SCHEMA = v.object(schemas(FIELDS));

/**
 * Every key that is not a field, at every level, each at its own path. A strict schema would
 * stop at the first.
 */
export function unknownFields(value: unknown): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  collectUnknown(value, FIELDS, [], issues);
  return issues;
}

// One path and one list for the whole walk: a thousand mailboxes would otherwise allocate both per item.
function collectUnknown(value: unknown, table: Table, at: PropertyKey[], issues: ConfigIssue[]): void {
  if (!isRecord(value)) return;
  const { names, entries } = shapeOf(table);
  for (const key of Object.keys(value)) {
    if (!names.has(key)) issues.push(unknownField(formatPath([...at, key]), key, [...names]));
  }
  for (const [key, field] of entries) {
    const nested = value[key];
    if (!field.fields && !(field.items && Array.isArray(nested))) continue;
    at.push(key);
    if (field.fields) collectUnknown(nested, field.fields, at, issues);
    const items = field.items;
    if (items && Array.isArray(nested)) {
      nested.forEach((item, i) => {
        at.push(i);
        collectUnknown(item, items, at, issues);
        at.pop();
      });
    }
    at.pop();
  }
}

// A table's names and entries, listed once: a thousand mailboxes would list theirs a thousand times.
const shapes = new WeakMap<Table, { names: ReadonlySet<string>; entries: readonly [string, Field][] }>();
function shapeOf(table: Table): { names: ReadonlySet<string>; entries: readonly [string, Field][] } {
  let shape = shapes.get(table);
  if (shape === undefined) {
    shape = { names: new Set(Object.keys(table)), entries: Object.entries(table) };
    shapes.set(table, shape);
  }
  return shape;
}

/** The input as the rules see it: every field that has a default is set. */
export type SettledInput = Omit<MailConfigInput, keyof typeof DEFAULTS | "mailboxes" | "ldap"> & {
  [K in Exclude<keyof typeof DEFAULTS, "quota">]-?: NonNullable<MailConfigInput[K]>;
} & {
  mailboxes: (MailConfigInput["mailboxes"][number] & {
    quota: string;
    aliases: string[];
    enabled: boolean;
    disabledReply: string;
    appPasswords: NonNullable<MailConfigInput["mailboxes"][number]["appPasswords"]>;
    requireAppPasswords: boolean;
  })[];
  backupKeep: Required<NonNullable<MailConfigInput["backupKeep"]>>;
  sendingLimits: Required<NonNullable<MailConfigInput["sendingLimits"]>>;
  ldap?: LdapInput & Required<Pick<LdapInput, "startTls" | "flavor" | "mailAttribute" | "cacheSeconds" | "quota">>;
};

/** Fills in every default, in nested objects and list items too, without touching the input. */
export function withDefaults(input: MailConfigInput): SettledInput {
  return settle(input, FIELDS) as SettledInput;
}

function settle(value: Record<string, unknown> | object, table: Table): Record<string, unknown> {
  const out: Record<string, unknown> = { ...value };
  for (const [key, field] of shapeOf(table).entries) {
    const given = out[key];
    if (given === undefined) {
      const fallback = field.default;
      if (fallback !== undefined) out[key] = typeof fallback === "object" && fallback !== null ? structuredClone(fallback) : fallback;
    } else if (field.fields && isRecord(given)) {
      out[key] = settle(given, field.fields);
    } else if (field.items && Array.isArray(given)) {
      const items = field.items;
      out[key] = given.map((item) => settle(item as object, items));
    }
  }
  return out;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
