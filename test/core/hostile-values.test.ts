// Hostile values in every string field of the configuration. Each is either refused, with an
// issue at that field, or accepted and then unable to add a line, a command, a map entry or a
// path component anywhere: in the host bundle (Postfix, Dovecot, rspamd, nginx, nftables,
// systemd units, scripts), the runtime files (Postfix texthash maps, Dovecot's users file, web
// files), the user data, the DNS records and the zone files.
//
// The fields come from the field table, so a new field is covered as soon as it exists; the
// first test fails until a base configuration below sets it. An accepted value is rendered
// and compared with the same configuration rendered unchanged: every file has the same path
// shape and number of lines, each changed line the same number of words and of every
// character that is syntax somewhere (comments, separators, quotes, shell, paths), every map
// entry is well formed, and a value the configuration carries is kept as given, not cut short
// into another valid one.
import { createHash } from "node:crypto";
import {
  appPasswordKey,
  cloudInit,
  ConfigError,
  type DnsRecord,
  dnsRecords,
  dnsZones,
  formatPath,
  hashPassword,
  hostBundle,
  hostFiles,
  type MailConfig,
  type MailConfigInput,
  parseConfig,
  placeholderValues,
  PRODUCTION_ENV,
  runtimeFiles,
  zoneFile,
} from "@mailstack/core";
import { FIELDS } from "../../packages/core/src/config/fields";
import { SAMPLE_HASH } from "../support/fixtures";
import { TEST_LDAP_CA } from "../support/ldap-ca";

const PASSWORD = "correct horse battery staple";
const APP_PASSWORD = "k3Jx9wQp2vLm8RtZ";
const KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/0123abcd-4567-89ef-0123-456789abcdef";

/**
 * Configurations that together set every string field, each valid on its own. Fields that
 * exclude each other (the two DNS providers, a subnet and a zone, an existing bucket and the
 * settings of a created one) are split between them. The first mailbox is referred to by
 * nothing but its own aliases, so a changed address is judged by what it renders, and in the
 * first configuration it is the postmaster, which receives root's mail.
 */
const BASES: Record<string, MailConfigInput> = {
  cloudflare: {
    domain: "example.com",
    extraDomains: ["example.org"],
    hostname: "mail.example.com",
    mailboxes: [
      {
        address: "alice@example.com",
        password: PASSWORD,
        quota: "10G",
        aliases: ["alice@example.org"],
        appPasswords: [
          { name: "phone", password: APP_PASSWORD, services: ["imap", "submission"] },
          { name: "laptop", passwordHash: SAMPLE_HASH },
        ],
        requireAppPasswords: true,
      },
      { address: "bob@example.com", passwordHash: SAMPLE_HASH, quota: "unlimited" },
      { address: "dave@example.com", password: PASSWORD, enabled: false, disabledReply: "Dave has left; write to info@example.com", aliases: ["dave@example.org"] },
    ],
    aliases: [
      { address: "info@example.com", to: ["bob@example.com", "carol@example.net", "dave@example.com"] },
      { address: "dmarc@example.com", to: ["bob@example.com"] },
    ],
    catchAll: { "example.com": "info@example.com" },
    allowExternalForwarding: true,
    dmarcPolicy: "reject",
    dmarcReports: "dmarc@example.com",
    inboundTls: "required",
    outboundTls: "dane",
    inboundTlsMinVersion: "TLSv1.3",
    adminCidrs: ["203.0.113.0/24", "2001:db8::/48"],
    instanceType: "t4g.small",
    architecture: "arm64",
    pop3: true,
    dkimSelector: "mail",
    dkimNextSelector: "next",
    dkimPreviousSelector: "old",
    secondaryMx: [{ host: "mx2.example.net", priority: 20 }],
    spfInclude: ["_spf.google.com"],
    mtaSts: "testing",
    caaIssuers: ["letsencrypt.org", "sectigo.com"],
    nonMailDomains: ["parked.example"],
    dnssec: true,
    verificationRecords: { "example.com": ["google-site-verification=abc123"] },
    dnsProvider: "cloudflare",
    cloudflareZoneIds: { "example.com": "0123456789abcdef0123456789abcdef" },
    backupReplicaRegion: "eu-central-1",
    backupKmsKeyArn: KMS_KEY,
    backupObjectLock: { mode: "GOVERNANCE", days: 30 },
    backupSchedule: "*-*-* 02:00:00",
    alertEmail: "ops@example.net",
    healthCheckSkip: ["port:25"],
    availabilityZone: "eu-west-1a",
  },
  route53: {
    domain: "example.com",
    mailboxes: [
      { address: "alice@example.com", password: PASSWORD },
      { address: "bob@example.com", passwordHash: SAMPLE_HASH },
    ],
    aliases: [{ address: "info@example.com", to: ["bob@example.com"] }],
    postmaster: "bob@example.com",
    abuse: "info@example.com",
    dnsProvider: "route53",
    route53ZoneIds: { "example.com": "Z0123456789ABCDEFGHIJ" },
    backupBucket: "my-mail-backups",
    backupKmsKeyArn: KMS_KEY,
    vpcId: "vpc-0123456789abcdef0",
    subnetId: "subnet-0123456789abcdef0",
    sesOutbound: true,
    sesRegion: "eu-west-1",
    sesMailFromSubdomain: "bounce",
    ldap: {
      url: "ldaps://ldap.example.com:636",
      flavor: "activedirectory",
      bindDn: "CN=svc-mail,OU=Service Accounts,DC=corp,DC=example,DC=com",
      bindPassword: "bind secret",
      baseDn: "OU=People,DC=corp,DC=example,DC=com",
      userFilter: "(&(objectClass=user)(mail=%u)(memberOf=CN=Mail Users,OU=Groups,DC=corp,DC=example,DC=com))",
      mailAttribute: "mail",
      caCertificate: TEST_LDAP_CA,
      domains: ["example.com"],
      quota: "2G",
    },
  },
};

// --- the string fields, from the field table ---

const ITEM = Symbol("[i]");
const KEY = Symbol("key");
const VALUE = Symbol("value");
/** A step of a field's path: a key, any list item, a record's key itself, or the value at any key. */
type Step = string | typeof ITEM | typeof KEY | typeof VALUE;
type Schema = { type: string; wrapped?: Schema; item?: Schema; key?: Schema; value?: Schema; entries?: Record<string, Schema> };

const unwrap = (schema: Schema): Schema => (schema.type === "optional" ? unwrap(schema.wrapped!) : schema);

/** Every place in a value of `schema` where a string goes; passwords and values deferred to Pulumi take strings too. */
function stringPlaces(schema: Schema, at: Step[]): Step[][] {
  const s = unwrap(schema);
  switch (s.type) {
    case "string":
    case "picklist":
    case "unknown":
      return [at];
    case "array":
      return stringPlaces(s.item!, [...at, ITEM]);
    case "object":
      return Object.entries(s.entries!).flatMap(([key, value]) => stringPlaces(value, [...at, key]));
    case "record":
      return [...(unwrap(s.key!).type === "string" ? [[...at, KEY] as Step[]] : []), ...stringPlaces(s.value!, [...at, VALUE])];
    default:
      return [];
  }
}

const PLACES = Object.entries(FIELDS).flatMap(([key, field]) => stringPlaces(field.schema as unknown as Schema, [key]));
const describePlace = (place: Step[]) =>
  place.map((s) => (s === ITEM ? "[]" : s === KEY ? "{key}" : s === VALUE ? "{value}" : `.${s}`)).join("").replace(/^\./, "");

/** A string in a base configuration: where it is, and whether it is a record's key. */
interface Slot {
  steps: (string | number)[];
  isKey: boolean;
  value: string;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/** The first string of `value` at `place`. */
function resolve(value: unknown, place: Step[], at: (string | number)[] = []): Slot | undefined {
  if (place.length === 0) return typeof value === "string" ? { steps: at, isKey: false, value } : undefined;
  const [step, ...rest] = place;
  if (step === ITEM) {
    if (!Array.isArray(value)) return undefined;
    for (const [i, item] of value.entries()) {
      const found = resolve(item, rest, [...at, i]);
      if (found) return found;
    }
    return undefined;
  }
  if (!isRecord(value)) return undefined;
  if (step === KEY) {
    const first = Object.keys(value)[0];
    return first === undefined ? undefined : { steps: [...at, first], isKey: true, value: first };
  }
  if (step === VALUE) {
    for (const key of Object.keys(value)) {
      const found = resolve(value[key], rest, [...at, key]);
      if (found) return found;
    }
    return undefined;
  }
  return resolve(value[step], rest, [...at, step]);
}

/** The input with the string at `slot` replaced by `value` (a record's key renamed, in place). */
function withValue(input: MailConfigInput, slot: Slot, value: string): MailConfigInput {
  const copy = structuredClone(input) as unknown as Record<string, unknown>;
  const parentSteps = slot.steps.slice(0, -1);
  const last = slot.steps[slot.steps.length - 1];
  const parent = parentSteps.reduce<any>((node, step) => node[step], copy);
  if (!slot.isKey) {
    parent[last] = value;
  } else {
    const owner = parentSteps.slice(0, -1).reduce<any>((node, step) => node[step], copy);
    owner[parentSteps[parentSteps.length - 1]] = Object.fromEntries(Object.entries(parent).map(([k, v]) => [k === last ? value : k, v]));
  }
  return copy as unknown as MailConfigInput;
}

/** The path an issue about the slot's new value names. */
const issuePath = (slot: Slot, value: string) => formatPath(slot.isKey ? [...slot.steps.slice(0, -1), value] : slot.steps);

// --- hostile values ---

const INJECTIONS = [
  "\nrelayhost = evil",
  "x\r\ny",
  "\r",
  "\n",
  "\0",
  "\u2028",
  "\u2029",
  "\u0085",
  "\t",
  "\v",
  "\x1b[2J",
  "|/usr/bin/id",
  "#x",
  "/../b",
  "a/../b",
  "..",
  "$(id)",
  "${IFS}",
  "`id`",
  ";id",
  "&id",
  ", y",
  "x y",
  '"y',
  "'y",
  "{y}",
  "}",
  "\\y",
  ":y",
  "=y",
  "%y",
  "!y",
  "<y>",
];

/** Each injection alone, before, after and inside the valid value (and its local part), and very long values. */
function hostileValues(valid: string): string[] {
  const mid = Math.floor(valid.length / 2);
  const at = valid.lastIndexOf("@");
  const out = new Set<string>([
    "|/usr/bin/id&#@example.com",
    "#x@example.com",
    "a/x@example.com",
    "",
    "x".repeat(10_000),
    `${valid}${" ".repeat(1000)}x`,
    `${valid.slice(0, mid)}${"9".repeat(300)}${valid.slice(mid)}`,
  ]);
  for (const s of INJECTIONS) {
    for (const v of [s, valid + s, s + valid, valid.slice(0, mid) + s + valid.slice(mid)]) out.add(v);
    if (at > 0) {
      out.add(`${valid.slice(0, at)}${s}${valid.slice(at)}`);
      out.add(`${s}${valid.slice(at)}`);
    }
  }
  out.delete(valid);
  return [...out];
}

// --- rendering everything ---

const BOOT = { region: "eu-west-1", ssmPath: "/mailstack/test/mail" };
const PARAMS = { ...BOOT, dataVolumeId: "vol-0123456789abcdef0", backupRepository: "s3:https://s3.eu-west-1.amazonaws.com/my-mail-backups/restic" };
const RUNTIME = PRODUCTION_ENV.paths.runtime;
const MAIN_CF = `${PRODUCTION_ENV.paths.postfixConfig}/main.cf`;

/**
 * Stands in for the bcrypt hash the component computes from a password (hashPassword, checked
 * below to yield only [./A-Za-z0-9] after its prefix): hex, so that it adds no "/" or "." that
 * would differ from the unchanged configuration's.
 */
const standInHash = (password: string) => `{BLF-CRYPT}$2b$10$${createHash("sha256").update(password).digest("hex").slice(0, 53)}`;

const DKIM_KEY = "-----BEGIN PRIVATE KEY-----\nDKIM\n-----END PRIVATE KEY-----\n";
const TLS_KEY = "-----BEGIN EC PRIVATE KEY-----\nTLS\n-----END EC PRIVATE KEY-----\n";
const RESTIC_PASSWORD = "Zq3vT8kW1pLx9cRb4NdY7hGm2sJf6aUe0oKi5tHw8yQn3Vc1";
/** The SES relay's credentials: an access key id and a password of the form sesSmtpPassword gives. */
const SES_CREDENTIALS = { username: "AKIAIOSFODNN7EXAMPLE", password: "BAeXAMPLEpassw0rdDerivedFromTheSecretKey+/=" };

interface Rendered {
  /** Host paths, the user data and zone files (`zone:<name>`), each with its content. */
  files: Map<string, string>;
  records: DnsRecord[];
}

/** What depends on the configuration alone, by its JSON: most accepted values parse to a configuration seen before. */
const configOutputs = new Map<string, Rendered>();

/** Every output of a parsed configuration, with secrets as MailParameters passes them. */
function render(config: MailConfig, input: MailConfigInput): Rendered {
  const key = JSON.stringify(config);
  let fixed = configOutputs.get(key);
  if (fixed === undefined) {
    fixed = { files: new Map(), records: dnsRecords(config, placeholderValues(config)) };
    // hostBundle also refuses two files at one path.
    hostBundle(config, PARAMS);
    for (const f of hostFiles(config, PARAMS)) fixed.files.set(f.path, f.content);
    fixed.files.set("user-data", cloudInit(config, BOOT));
    for (const zone of dnsZones(config)) fixed.files.set(`zone:${zone}`, zoneFile(zone, fixed.records));
    configOutputs.set(key, fixed);
  }
  const hash = (given: { password?: unknown; passwordHash?: unknown }, credential: string, key: string): [string, string] => [
    key,
    credential === "passwordHash" ? String(given.passwordHash).trim() : standInHash(String(given.password)),
  ];
  const passwordHashes = new Map(
    config.mailboxes.flatMap((m) => {
      const given = input.mailboxes[m.index];
      return [hash(given, m.credential, m.address), ...m.appPasswords.map((a, i) => hash(given.appPasswords![i], a.credential, appPasswordKey(m.address, a.name)))];
    }),
  );
  const secrets = { passwordHashes, dkimPrivateKeyPem: DKIM_KEY, tlsPrivateKeyPem: TLS_KEY, resticPassword: RESTIC_PASSWORD, ldapBindPassword: input.ldap && String(input.ldap.bindPassword), sesSmtpCredentials: SES_CREDENTIALS };
  const files = new Map(fixed.files);
  for (const f of runtimeFiles(config, secrets)) files.set(`${RUNTIME}/${f.name}`, f.content);
  return { files, records: fixed.records };
}

// --- what an accepted value may change ---

/** Characters that are syntax in some file: comments, separators, quotes, shell, paths, variables. */
const SYNTAX = [..."#|/\\;,=:\"'`$&{}()<>%!*?[]~^@+"];
const ASCII_LINE = /^[\t\x20-\x7e]*$/;
const LOCAL = "[a-z0-9_-]+(?:\\.[a-z0-9_-]+)*";
const NAME = "[a-z0-9_-]+(?:\\.[a-z0-9_-]+)*";
/** A key or target in a Postfix map: an address, a domain, or a bare local name. */
const MAP_NAME = new RegExp(`^(?:${LOCAL}@)?${NAME}$`);
const ADDRESS = new RegExp(`^${LOCAL}@${NAME}$`);
/** The recipient access map: an address refused with 550 5.2.1 and a disabled mailbox's reply, free text of printable ASCII. */
const ACCESS_MAP = `${RUNTIME}/recipient-access`;
const ACCESS_ENTRY = new RegExp(`^${LOCAL}@${NAME} 550 5\\.2\\.1 [\\x21-\\x7e](?:[\\x20-\\x7e]{0,198}[\\x21-\\x7e])?$`);
/** The reply's text is one value, whatever it holds: only the words before it are syntax. */
const accessHead = (line: string) => line.split(" ").slice(0, 3).join(" ");
/**
 * The directory's files (Dovecot's settings, its bind-password file, Postfix's ldap table):
 * a DN, a filter or the bind password is one value whatever it holds, as a space or an "="
 * belongs in it, so only the setting's name is syntax there. Dovecot reads it between double
 * quotes, with `"` and `\` escaped; Postfix as the rest of the line, trimmed.
 */
const LDAP_FILES = new Set([`${PRODUCTION_ENV.paths.dovecotConfig}/dovecot-ldap.conf.ext`, `${RUNTIME}/ldap/dovecot-bind`, `${RUNTIME}/ldap/postfix-map.cf`]);
const LDAP_FREE_VALUES: Record<string, RegExp> = Object.fromEntries([
  ...["dn", "dnpass", "base", "pass_filter", "user_filter"].map((name) => [name, /^"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*"$/]),
  ...["bind_dn", "bind_pw", "search_base", "query_filter"].map((name) => [name, /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/]),
]);
/** Why a changed line of a directory's file is not the same setting with another free value; undefined when it is, or when the setting is not free. */
function ldapValueProblem(line: string, was: string): string | undefined {
  const name = /^([a-z_]+) = /.exec(was)?.[1];
  if (name === undefined || LDAP_FREE_VALUES[name] === undefined) return undefined;
  if (!line.startsWith(`${name} = `)) return "is another setting";
  return LDAP_FREE_VALUES[name].test(line.slice(name.length + 3)) ? "" : "has a value that is not one well-formed value";
}
/** The runtime files main.cf reads as texthash maps, and rspamd's selector map. */
const mapsOf = (rendered: Rendered): string[] => [
  ...new Set([...(rendered.files.get(MAIN_CF) ?? "").matchAll(/texthash:([^\s,]+)/g)].map((m) => m[1])),
  `${RUNTIME}/dkim-selectors`,
];

const linesOf = (content: string) => content.split("\n");
const count = (text: string, c: string) => text.split(c).length - 1;
const words = (line: string) => line.split(/[ \t]+/).filter(Boolean).length;
const outsideAscii = (text: string) => text.replace(/[\n\t\x20-\x7e]/g, "").length;
/** Words of a zone-file line, a quoted string being one; undefined when its quotes do not close. */
const zoneWords = (line: string): string[] | undefined =>
  /^(?:(?:"(?:[^"\\]|\\.)*"|[^\s"]+)(?:[ \t]+|$))*$/.test(line) ? (line.match(/"(?:[^"\\]|\\.)*"|[^\s"]+/g) ?? []) : undefined;

/** What the hostile rendering adds or changes beyond the value itself; empty when nothing. */
function problems(hostile: Rendered, baseline: Rendered): string[] {
  const out: string[] = [];
  // Reported after the map entries and the users file, which say more.
  const fileProblems: string[] = [];
  // Files: the same set, paired by path; those whose path changed (a new DKIM selector) in order.
  const onlyHostile = [...hostile.files.keys()].filter((p) => !baseline.files.has(p)).sort();
  const onlyBaseline = [...baseline.files.keys()].filter((p) => !hostile.files.has(p)).sort();
  if (onlyHostile.length !== onlyBaseline.length) fileProblems.push(`files ${JSON.stringify(onlyHostile)} instead of ${JSON.stringify(onlyBaseline)}`);
  const pairs: [string, string][] = [...hostile.files.keys()].filter((p) => baseline.files.has(p)).map((p) => [p, p]);
  onlyHostile.forEach((p, i) => {
    if (onlyBaseline[i] !== undefined) pairs.push([p, onlyBaseline[i]]);
  });
  for (const [path, basePath] of pairs) {
    const name = JSON.stringify(path);
    if (path.startsWith("/")) {
      const parts = path.split("/").slice(1);
      if (parts.some((p) => !/^[A-Za-z0-9@._+-]+$/.test(p) || p === "." || p === "..")) fileProblems.push(`${name} is not a plain path`);
      if (parts.length !== basePath.split("/").length - 1) fileProblems.push(`${name} has other path components than ${basePath}`);
    }
    const content = hostile.files.get(path)!;
    const base = baseline.files.get(basePath)!;
    if (content === base) continue;
    const lines = linesOf(content);
    const baseLines = linesOf(base);
    if (lines.length !== baseLines.length) {
      fileProblems.push(`${name} has ${lines.length} lines instead of ${baseLines.length}`);
      continue;
    }
    if (outsideAscii(content) !== outsideAscii(base)) fileProblems.push(`${name} gains control or non-ASCII characters`);
    const zone = path.startsWith("zone:");
    lines.forEach((hostileLine, i) => {
      const was = path === ACCESS_MAP ? accessHead(baseLines[i]) : baseLines[i];
      const line = path === ACCESS_MAP ? accessHead(hostileLine) : hostileLine;
      if (path === ACCESS_MAP && hostileLine !== "" && !ACCESS_ENTRY.test(hostileLine)) fileProblems.push(`${name} line ${i + 1} is not an access entry: ${JSON.stringify(hostileLine)}`);
      if (line === was) return;
      const free = LDAP_FILES.has(path) ? ldapValueProblem(line, was) : undefined;
      if (free !== undefined) {
        if (free !== "") fileProblems.push(`${name} line ${i + 1} ${JSON.stringify(line.slice(0, 120))} ${free}`);
        return;
      }
      const where = `${name} line ${i + 1} ${JSON.stringify(line.slice(0, 120))}`;
      if (!ASCII_LINE.test(line)) fileProblems.push(`${where} holds a control or non-ASCII character`);
      if (zone) {
        // Values inside quoted TXT strings are data; a zone line must keep its fields.
        const hostileWords = zoneWords(line);
        const baseWords = zoneWords(was);
        if (hostileWords === undefined || hostileWords.length !== baseWords?.length) fileProblems.push(`${where} has other fields than ${JSON.stringify(was)}`);
        return;
      }
      if (words(line) !== words(was)) fileProblems.push(`${where} has ${words(line)} words instead of ${words(was)}`);
      const syntax = SYNTAX.filter((c) => count(line, c) !== count(was, c));
      if (syntax.length > 0) fileProblems.push(`${where} changes the number of ${syntax.join(" ")}`);
    });
  }
  // Postfix texthash maps: one entry per line, a plain key and plain comma-separated targets.
  const maps = mapsOf(baseline);
  if (maps.length < 5 || JSON.stringify(mapsOf(hostile)) !== JSON.stringify(maps)) out.push(`main.cf reads the maps ${mapsOf(hostile).join(" ")} instead of ${maps.join(" ")}`);
  for (const map of maps) {
    const entries = (hostile.files.get(map) ?? "").split("\n").filter(Boolean);
    const baseEntries = (baseline.files.get(map) ?? "").split("\n").filter(Boolean);
    if (entries.length !== baseEntries.length) out.push(`map ${map} has ${entries.length} entries instead of ${baseEntries.length}`);
    const keys = new Set<string>();
    for (const entry of entries) {
      const [key, value, ...extra] = map === ACCESS_MAP ? [entry.split(" ")[0], "OK"] : entry.split(" ");
      // A catch-all's key is @domain, in the aliases map only.
      const catchAll = map === `${RUNTIME}/aliases` && key.startsWith("@") && MAP_NAME.test(key.slice(1));
      if (map === ACCESS_MAP && !ACCESS_ENTRY.test(entry)) out.push(`map ${map} has the malformed entry ${JSON.stringify(entry)}`);
      if (extra.length > 0 || value === undefined || !(MAP_NAME.test(key) || catchAll) || !value.split(",").every((t) => t === "OK" || MAP_NAME.test(t))) {
        out.push(`map ${map} has the malformed entry ${JSON.stringify(entry)}`);
      }
      if (keys.has(key)) out.push(`map ${map} has the key ${key} twice`);
      keys.add(key);
    }
  }
  // Dovecot's passwd-file: user:password:uid:gid:gecos:home:shell:extra fields, uid to shell empty.
  const users = (hostile.files.get(`${RUNTIME}/users`) ?? "").split("\n").filter(Boolean);
  const baseUsers = (baseline.files.get(`${RUNTIME}/users`) ?? "").split("\n").filter(Boolean);
  if (users.length !== baseUsers.length) out.push(`users has ${users.length} entries instead of ${baseUsers.length}`);
  for (const line of users) {
    const fields = line.split(":");
    const [user, hash, ...empty] = fields.slice(0, 7);
    const extra = fields.slice(7).join(":");
    if (!ADDRESS.test(user) || !/^\{[A-Z0-9-]+\}[\x21-\x7e]+$/.test(hash ?? "") || empty.length !== 5 || empty.some((f) => f !== "") || !/^(userdb_quota_rule=\*:storage=[1-9]\d*M)?$/.test(extra)) {
      out.push(`users has the malformed entry ${JSON.stringify(line)}`);
    }
  }
  // The app passwords' passwd-file: keys of a mailbox, a protocol and a slot, or the deny line.
  const appLines = (rendered: Rendered) => (rendered.files.get(`${RUNTIME}/app-passwords`) ?? "").split("\n").filter(Boolean);
  if (appLines(hostile).length !== appLines(baseline).length) out.push(`app-passwords has ${appLines(hostile).length} entries instead of ${appLines(baseline).length}`);
  for (const line of appLines(hostile)) {
    const [key, hash, ...extra] = line.split(":");
    const [user, ...rest] = key.split("/");
    const slot = rest.length === 2 && /^(imap|pop3|smtp)$/.test(rest[0]) && /^[1-8]$/.test(rest[1]) && /^\{[A-Z0-9-]+\}[\x21-\x7e]+$/.test(hash ?? "");
    const only = rest.length === 1 && rest[0] === "app-passwords-only" && hash === "";
    if (!ADDRESS.test(user) || extra.length > 0 || !(slot || only)) out.push(`app-passwords has the malformed entry ${JSON.stringify(line)}`);
  }
  // DNS: the same records, names plain, TXT data only well-formed quoted strings.
  if (hostile.records.length !== baseline.records.length) out.push(`${hostile.records.length} DNS records instead of ${baseline.records.length}`);
  const baseRecords = new Map(baseline.records.map((r) => [r.key, r]));
  for (const r of hostile.records) {
    const what = `DNS record ${JSON.stringify(r.key)}`;
    if (!/^[a-z0-9._-]+$/.test(r.key) || !/^[a-z0-9._-]+$/.test(r.name) || !/^[a-z0-9.-]+$/.test(r.zone)) out.push(`${what} has a malformed key, name or zone`);
    if (!/^[\x20-\x7e]*$/.test(r.comment) || !/^[\x20-\x7e]+$/.test(r.content)) out.push(`${what} holds a control or non-ASCII character`);
    if (r.type === "TXT") {
      if (!/^"(?:[^"\\]|\\["\\])*"(?: "(?:[^"\\]|\\["\\])*")*$/.test(r.content)) out.push(`${what} is not a list of quoted strings: ${JSON.stringify(r.content)}`);
    } else {
      const was = baseRecords.get(r.key);
      const plain = r.type === "CAA" ? /^0 (?:issue|iodef) "[^\s"\\;]+"$/.test(r.content) : /^[^\s"\\;]+(?: [^\s"\\;]+)*$/.test(r.content);
      if (!plain || (was !== undefined && words(was.content) !== words(r.content))) out.push(`${what} has malformed data ${JSON.stringify(r.content)}`);
    }
  }
  return [...out, ...fileProblems];
}

// --- the tests ---

const parsedBases = Object.fromEntries(Object.entries(BASES).map(([name, input]) => [name, parseConfig(input)]));
const baselines = new Map<string, Rendered>();
const baselineOf = (name: string) => {
  let rendered = baselines.get(name);
  if (rendered === undefined) {
    rendered = render(parsedBases[name], BASES[name]);
    baselines.set(name, rendered);
  }
  return rendered;
};

/** Each string field with the first base configuration that sets it. */
const CASES = PLACES.map((place) => {
  for (const [base, input] of Object.entries(BASES)) {
    const slot = resolve(input, place);
    if (slot) return { place, base, slot };
  }
  return { place, base: undefined, slot: undefined };
});

test("the field table has string fields, and a base configuration sets each of them", () => {
  expect(CASES.length).toBeGreaterThan(40);
  expect(CASES.filter((c) => c.slot === undefined).map((c) => describePlace(c.place))).toEqual([]);
  // The stand-in for password hashes has the form of the real ones.
  expect(hashPassword("x\nrelayhost = evil", "alice@example.com", BOOT.ssmPath)).toMatch(/^\{BLF-CRYPT\}\$2b\$10\$[./A-Za-z0-9]{53}$/);
});

describe.each(CASES.filter((c) => c.slot !== undefined).map((c) => [describePlace(c.place), c] as const))("%s", (_, { base, slot }) => {
  test("every hostile value is refused at the field, or changes nothing but itself", () => {
    const input = BASES[base!];
    const failures = new Map<string, string[]>();
    const fail = (value: string, problem: string) => {
      const shown = JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
      failures.set(shown, [...(failures.get(shown) ?? []), problem]);
    };
    for (const value of hostileValues(slot!.value)) {
      const changed = withValue(input, slot!, value);
      let config: MailConfig;
      try {
        config = parseConfig(changed);
      } catch (error) {
        if (!(error instanceof ConfigError)) {
          fail(value, `parseConfig threw ${String(error)}`);
        } else {
          const path = issuePath(slot!, value);
          if (!error.issues.some((i) => i.path === path || i.path.startsWith(`${path}.`) || i.path.startsWith(`${path}[`))) {
            fail(value, `refused, but no issue names ${path}: ${error.issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`);
          }
        }
        continue;
      }
      let found: string[];
      try {
        found = problems(render(config, changed), baselineOf(base!));
      } catch (error) {
        found = [`rendering threw ${String(error)}`];
      }
      for (const p of found) fail(value, p);
      // A value the configuration carries is kept as given, up to case and surrounding blanks,
      // never cut or rewritten into another valid one.
      const kept = (text: string) => JSON.stringify(text.trim()).slice(1, -1).toLowerCase();
      if (JSON.stringify(parsedBases[base!]).toLowerCase().includes(kept(slot!.value)) && !JSON.stringify(config).toLowerCase().includes(kept(value))) {
        fail(value, "accepted, but changed into another value");
      }
    }
    // The first problems of each of the first values, and how many values failed.
    const shown = Object.fromEntries([...failures].slice(0, 12).map(([value, found]) => [value, [...found.slice(0, 3), ...(found.length > 3 ? [`… ${found.length - 3} more`] : [])]]));
    expect({ failures: shown, values: failures.size }).toEqual({ failures: {}, values: 0 });
  });
});

test("the checks catch the attacks when validation is bypassed", () => {
  // The config parseConfig would have produced from the old, wider local-part rule.
  const input = BASES.cloudflare;
  const config = parsedBases.cloudflare;
  for (const evil of ["|/usr/bin/id&#@example.com", "#x@example.com", "a/x@example.com"]) {
    const mailboxes = config.mailboxes.map((m, i) => (i === 0 ? { ...m, address: evil } : m));
    const aliases = config.aliases.map((a) => ({ ...a, to: a.to.map((t) => (t === "alice@example.com" ? evil : t)) }));
    const hostile: MailConfig = { ...config, mailboxes, aliases, postmaster: evil };
    const found = problems(render(hostile, input), baselineOf("cloudflare"));
    const malformed = (what: string) => found.some((p) => p.startsWith(`${what} has the malformed entry`) && p.includes(evil));
    expect([evil, malformed("users"), malformed(`map ${RUNTIME}/mailboxes`), malformed(`map ${RUNTIME}/aliases`)]).toEqual([evil, true, true, true]);
    // The postmaster receives root's mail: the alias to it is a command, a comment or a path no more.
    expect([evil, found.some((p) => /^map \S+ has the malformed entry "root\S* /.test(p))]).toEqual([evil, true]);
  }
  // A line added to any file is caught, as is a quota the users file cannot read.
  const added = render(config, input);
  added.files.set(MAIN_CF, `${added.files.get(MAIN_CF)}relayhost = evil\n`);
  expect(problems(added, baselineOf("cloudflare"))).toEqual([`${JSON.stringify(MAIN_CF)} has ${linesOf(added.files.get(MAIN_CF)!).length} lines instead of ${linesOf(added.files.get(MAIN_CF)!).length - 1}`]);
  // A disabled mailbox's reply with a line break would add an entry that permits to the access map.
  const reply: MailConfig = { ...config, mailboxes: config.mailboxes.map((m) => (m.enabled ? m : { ...m, disabledReply: "gone\nalice@example.com OK" })) };
  expect(problems(render(reply, input), baselineOf("cloudflare"))).toContainEqual(expect.stringContaining('map /etc/mailstack/recipient-access has the malformed entry "alice@example.com OK"'));
  const huge: MailConfig = { ...config, mailboxes: config.mailboxes.map((m, i) => (i === 0 ? { ...m, quotaMiB: 1e33 } : m)) };
  expect(problems(render(huge, input), baselineOf("cloudflare"))).toContainEqual(expect.stringContaining("users has the malformed entry"));
  // A DN or filter with a line break would add a setting to the directory's files, however quoted.
  const ldap = parsedBases.route53.ldap!;
  for (const changed of [{ bindDn: "cn=x\nauth_bind = no" }, { userFilter: "(mail=%u)\npass_attrs = =nopassword=y" }]) {
    const found = problems(render({ ...parsedBases.route53, ldap: { ...ldap, ...changed } }, BASES.route53), baselineOf("route53"));
    expect(found).toContainEqual(expect.stringMatching(/dovecot-ldap\.conf\.ext" has \d+ lines instead of/));
  }
});
