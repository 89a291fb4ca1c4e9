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
  /** DKIM selector. Default "mail". */
  dkimSelector?: string;
  /** Days a replaced or deleted backup object version is kept. Default 90. */
  backupRetentionDays?: number;
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
  backupRetentionDays: "json",
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
  dkimSelector: string;
  backupRetentionDays: number;
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

const MAILBOX_FIELDS = {
  address: v.string(),
  password: v.optional(secretValue()),
  passwordHash: v.optional(secretValue()),
  quota: v.optional(v.string()),
  aliases: v.optional(v.array(v.string())),
};
const ALIAS_FIELDS = { address: v.string(), to: v.array(v.string()) };
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
  dkimSelector: matching(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, "must be one DNS label: lower-case letters, digits, inner hyphens"),
  backupRetentionDays: integer(1, 3650),
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
  backupSchedule: "*-*-* 02:00:00",
  backupKeep: { daily: 7, weekly: 4, monthly: 12 },
  quota: "5G",
  dmarcPolicy: "quarantine",
} as const;

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
  for (const [list, fields] of [["mailboxes", MAILBOX_FIELDS], ["aliases", ALIAS_FIELDS]] as const) {
    const items = record[list];
    if (Array.isArray(items)) items.forEach((item, i) => check(item, [list, i], fields));
  }
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

  private domain(path: string, raw: string): string | undefined {
    const checked = checkDomain(raw);
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

    if (input.vpcId && !input.subnetId) {
      this.fail("subnetId", "is required when vpcId is set: name the public subnet the mail host goes into");
    }
    if (input.subnetId && input.availabilityZone) {
      this.fail("availabilityZone", "conflicts with subnetId, which already fixes the zone; remove one");
    }

    for (const raw of Object.keys(input.cloudflareZoneIds ?? {})) {
      const d = this.domain(`cloudflareZoneIds.${raw}`, raw);
      if (d !== undefined && !domains.includes(d)) {
        this.fail(`cloudflareZoneIds.${raw}`, `"${raw}" is not a mail domain (${domains.join(", ")}); remove it or add it to extraDomains`);
      }
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
      dkimSelector: input.dkimSelector ?? DEFAULTS.dkimSelector,
      backupRetentionDays: input.backupRetentionDays ?? DEFAULTS.backupRetentionDays,
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
