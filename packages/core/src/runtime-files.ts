import { createHash } from "node:crypto";
import type { MailConfig } from "./config";
import { deliveringAddresses } from "./config/model";
import { NFT_ADMIN_FILE, nftablesAdmin } from "./firewall";
import { type HostEnv, PRODUCTION_ENV, UNITS } from "./layout";
import { dovecotLdapBind, LDAP_DOVECOT_BIND_FILE, LDAP_POSTFIX_MAP_FILE, postfixLdapMap } from "./ldap";
import { SES_SMTP_CREDENTIALS_FILE, type SesSmtpCredentials, sesSmtpCredentialsFile } from "./ses";
import { WEB_FILES, webFiles } from "./web";

/**
 * A file that changes day to day (users, aliases, keys). It reaches the host through SSM
 * Parameter Store and the runtime object ({@link runtimeDelivery}), never through user data or
 * the host bundle, and is installed into the runtime directory
 * (`HostEnv.paths.runtime`) by the sync unit.
 */
export interface RuntimeFile {
  /** Path relative to the runtime directory. */
  name: string;
  /** The file's content, printable ASCII. */
  content: string;
  /** Octal permissions, e.g. "0640". */
  mode: string;
  /** The owning user. */
  owner: string;
  /** The owning group, e.g. the daemon's that reads it. */
  group: string;
  /** systemd units reloaded when the file changes. */
  reload: string[];
  /** A private key or password: kept in a SecureString parameter of its own (see {@link runtimeDelivery}). */
  key: boolean;
}

/** The secret inputs of the runtime files, known only once Pulumi resolves them. */
export interface RuntimeSecrets {
  /** Dovecot password hash ({SCHEME}...) of every mailbox by its address, and of every app password by {@link appPasswordKey}. */
  passwordHashes: ReadonlyMap<string, string>;
  /** PEM private key that signs with `config.dkimSelector`. */
  dkimPrivateKeyPem: string;
  /**
   * PEM private key of the host's TLS certificate. It is kept across renewals and instance
   * replacements, so the TLSA record that pins it stays valid.
   */
  tlsPrivateKeyPem: string;
  /** Password of the host's restic repository, which encrypts every backup. */
  resticPassword: string;
  /** Password of the LDAP directory's bind account; needed only with `config.ldap`. */
  ldapBindPassword?: string;
  /** The SES relay's SMTP credentials; needed only with `config.ses.outbound`. */
  sesSmtpCredentials?: SesSmtpCredentials;
}

/** Postfix's recipient access map (disabled mailboxes), relative to the runtime directory. */
export const RECIPIENT_ACCESS_FILE = "recipient-access";
/** The restic password file, relative to the runtime directory. */
export const RESTIC_PASSWORD_FILE = "backup/restic-password";
/** restic forget's keep options, one per line, relative to the runtime directory. */
export const BACKUP_KEEP_FILE = "backup/keep";

const mib = (n: number) => `${n}M`;
const lines = (items: string[]) => items.map((l) => `${l}\n`).join("");

/**
 * The Dovecot passwd-file; uid, gid and home come from the userdb's default_fields. A disabled
 * mailbox is left out: Dovecot then refuses its logins (IMAP, POP3, and submission through
 * the auth socket) and LMTP delivery to it, mailstack-sync ends its open sessions as for a
 * removed user, and its Maildir stays as it is for when it is enabled again.
 */
function usersFile(config: MailConfig, hashes: ReadonlyMap<string, string>): string {
  return config.mailboxes
    .filter((m) => m.enabled)
    .map((m) => {
      const hash = checkedHash(hashes.get(m.address), m.address);
      const quota = m.quotaMiB === undefined ? "" : `userdb_quota_rule=*:storage=${mib(m.quotaMiB)}`;
      return `${m.address}:${hash}::::::${quota}\n`;
    })
    .join("");
}

/** The app passwords' passwd-file, relative to the runtime directory (see dovecotConf's passdbs). */
export const APP_PASSWORDS_FILE = "app-passwords";

/** Where an app password's hash is found in {@link RuntimeSecrets.passwordHashes}, and its bcrypt salt's name. */
export const appPasswordKey = (address: string, name: string): string => `${address}/${name}`;

/** Dovecot's `%s` for each protocol an app password may name: Postfix asks the auth socket as `smtp`. */
const DOVECOT_SERVICES = { imap: "imap", pop3: "pop3", submission: "smtp" } as const;

/** The key of a mailbox's line in {@link APP_PASSWORDS_FILE} that refuses its own password. */
export const APP_PASSWORDS_ONLY = "app-passwords-only";

const checkedHash = (hash: string | undefined, what: string): string => {
  if (hash === undefined) throw new Error(`no password hash for ${what}`);
  // The components check hashes as secrets resolve; a ":" or a line break here would add a
  // field or a user to Dovecot's passwd-file, whoever calls this.
  if (!/^[\x21-\x39\x3b-\x7e]+$/.test(hash)) throw new Error(`the password hash for ${what} is not one word of printable characters without ":"`);
  return hash;
};

/**
 * The app passwords' passwd-file. Dovecot's passwd-file holds one password per key, so each
 * app password is keyed by mailbox, protocol and slot (its position, 1 to MAX_APP_PASSWORDS),
 * `alice@example.com/imap/1`, and dovecot.conf has one passdb per slot, each looking up
 * `%Lu/%s/<slot>`: a protocol an app password does not list finds no key. A mailbox that
 * refuses its own password has an `<address>/app-passwords-only` line, which a deny passdb
 * finds before the users file is read. Disabled mailboxes have no line.
 */
function appPasswordsFile(config: MailConfig, hashes: ReadonlyMap<string, string>): string {
  const entries: string[] = [];
  for (const m of config.mailboxes) {
    if (!m.enabled) continue;
    if (m.requireAppPasswords) entries.push(`${m.address}/${APP_PASSWORDS_ONLY}:`);
    m.appPasswords.forEach((a, i) => {
      const key = appPasswordKey(m.address, a.name);
      const hash = checkedHash(hashes.get(key), `app password ${key}`);
      for (const service of a.services) entries.push(`${m.address}/${DOVECOT_SERVICES[service]}/${i + 1}:${hash}`);
    });
  }
  return lines(entries.sort());
}

/** The directory's runtime key files, with its bind password; none without `ldap`. */
function ldapFiles(config: MailConfig, password: string | undefined, env: HostEnv): RuntimeFile[] {
  if (config.ldap === undefined) return [];
  if (password === undefined) throw new Error("no bind password for the LDAP directory");
  // The components check it as it resolves; a line break here would add a setting, whoever calls this.
  if (!/^[\x20-\x7e]*$/.test(password)) throw new Error("the LDAP bind password is not one line of printable ASCII");
  return [runtimeFile(LDAP_DOVECOT_BIND_FILE, dovecotLdapBind(password)), runtimeFile(LDAP_POSTFIX_MAP_FILE, postfixLdapMap(config.ldap, password, env))];
}

/** Enabled mailboxes each address delivers to, following aliases through other aliases. */
function localRecipients(config: MailConfig): Map<string, string[]> {
  const mailboxes = new Set(config.mailboxes.filter((m) => m.enabled).map((m) => m.address));
  const aliases = new Map(config.aliases.map((a) => [a.address, a.to]));
  const resolved = new Map<string, string[]>();
  const resolve = (address: string, seen: Set<string>): string[] => {
    if (mailboxes.has(address)) return [address];
    const cached = resolved.get(address);
    if (cached) return cached;
    if (seen.has(address)) return [];
    seen.add(address);
    const out = [...new Set((aliases.get(address) ?? []).flatMap((t) => resolve(t, seen)))].sort();
    resolved.set(address, out);
    return out;
  };
  for (const a of config.aliases) resolve(a.address, new Set());
  return resolved;
}

/**
 * Who may send as which address (Postfix smtpd_sender_login_maps): an enabled mailbox as
 * itself, and every enabled mailbox an alias delivers to as that alias. A catch-all grants
 * nothing: its key would be `@domain`, which Postfix (and rspamd's From: check, on the same
 * map) would read as the whole domain.
 */
function senderLogins(config: MailConfig): string {
  const recipients = localRecipients(config);
  const entries = config.mailboxes.filter((m) => m.enabled).map((m) => `${m.address} ${m.address}`);
  for (const a of config.aliases) {
    const logins = recipients.get(a.address) ?? [];
    if (logins.length > 0) entries.push(`${a.address} ${logins.join(",")}`);
  }
  return lines(entries.sort());
}

/**
 * Postfix's virtual_alias_maps. Exact addresses come first in Postfix's lookup order
 * (`user+ext@domain`, `user@domain`, then `@domain`), so mailboxes, aliases and role
 * addresses win over a catch-all; a mailbox of a catch-all domain is mapped to itself, as
 * Postfix's virtual_mailbox_maps are not consulted before virtual aliasing. A target that
 * delivers nowhere (a disabled mailbox, or its own alias) is skipped where others remain; an
 * alias left without one (a disabled mailbox's own) keeps its target, so that mail getting
 * past the RCPT refusal (the host's own) bounces as for an unknown mailbox instead of reaching
 * the catch-all.
 */
function aliasesFile(config: MailConfig): string {
  const domains = new Set(config.domains);
  const hosted = (address: string) => domains.has(address.slice(address.indexOf("@") + 1));
  const delivering = deliveringAddresses(config.mailboxes, config.aliases, hosted);
  const entries = config.aliases.map((a) => {
    const live = a.to.filter((t) => delivering.has(t) || !hosted(t));
    return { address: a.address, to: live.length > 0 ? live : a.to };
  });
  const catchAllDomains = new Set(config.catchAll.map((c) => c.domain));
  for (const m of config.mailboxes) if (catchAllDomains.has(m.address.slice(m.address.indexOf("@") + 1))) entries.push({ address: m.address, to: [m.address] });
  entries.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  return lines([
    ...entries.map((a) => `${a.address} ${a.to.join(",")}`),
    ...config.catchAll.map((c) => `@${c.domain} ${c.to}`),
    ...hostRoleAliases(config).map((a) => `${a.address} ${a.to.join(",")}`),
  ]);
}

/** What a refusal of mail to a disabled mailbox starts with: RFC 3463's "mailbox disabled, not accepting messages". */
export const DISABLED_REPLY_CODE = "550 5.2.1";

/**
 * Postfix's check_recipient_access map (port 25 and submission): each disabled mailbox and its
 * own aliases, refused at RCPT with the mailbox's disabledReply. Empty while every mailbox is
 * enabled.
 */
function recipientAccess(config: MailConfig): string {
  const entries: string[] = [];
  for (const m of config.mailboxes.filter((b) => !b.enabled)) {
    const own = config.aliases.filter((a) => a.origin === "mailbox" && a.to[0] === m.address).map((a) => a.address);
    for (const address of [m.address, ...own]) entries.push(`${address} ${DISABLED_REPLY_CODE} ${m.disabledReply}`);
  }
  return lines(entries.sort());
}

/**
 * Who may read a runtime file besides its owner, root: everyone, the group of the one daemon
 * that reads a secret, or nobody (a secret only root's own jobs read).
 */
type Readers = "everyone" | { group: string } | "nobody";

/**
 * The grammar mailstack-sync parses a runtime file against before it installs it (each one in
 * the script, by this name); a file that does not parse is refused with the whole update.
 * - `passwd-file`: Dovecot passwd-file lines `address:{SCHEME}hash::::::[userdb_quota_rule=*:storage=NM]`;
 * - `postfix-map`: texthash lines `key value`, an address or domain, then `OK` or addresses separated by commas;
 * - `virtual-aliases`: texthash lines `key value`, an address or `@domain` (a catch-all), then addresses separated by commas;
 * - `recipient-access`: texthash lines `address 550 5.2.1 text`, the text 1–200 printable ASCII characters;
 * - `dkim-selectors`: `domain selector`;
 * - `restic-keep`: `--keep-(last|hourly|daily|weekly|monthly|yearly)=N`;
 * - `nft-admin`: comments, and `add element inet mailstack admin_v4|admin_v6 { networks }` ({@link nftablesAdmin});
 * - `domain-names`: one domain name a line;
 * - `static`: anything (nginx serves it as a static file);
 * - `pem`: PEM blocks;
 * - `password`: one line of printable ASCII;
 * - `dovecot-ldap-bind`: the one line `dnpass = "password"`, `"` and `\` escaped with `\`;
 * - `postfix-ldap`: ldap_table(5) lines `name = value` of the names {@link postfixLdapMap} writes;
 * - `sasl-passwords`: Postfix SASL client lines `[host]:port user:password`, the password printable ASCII.
 */
export type RuntimeGrammar = "sasl-passwords" | "passwd-file" | "app-passwords" | "postfix-map" | "virtual-aliases" | "recipient-access" | "dkim-selectors" | "restic-keep" | "nft-admin" | "domain-names" | "static" | "pem" | "password" | "dovecot-ldap-bind" | "postfix-ldap";

/**
 * What the host takes of a runtime file, whatever a manifest says: its name, mode, owner and
 * the units it reloads, and how its content must read. The host holds these in its bundle
 * ({@link runtimeFileTable}) and refuses a manifest that names another file or another mode,
 * owner or unit; {@link runtimeFiles} takes every file's from here.
 */
export interface RuntimeFileRule {
  /** Path relative to the runtime directory; for a family of files, how their names read, e.g. `dkim/<selector>.key`. */
  name: string;
  /**
   * For a family of files (the DKIM keys, one per selector): a regular expression, written
   * alike for JavaScript and Python, that the whole name of each matches.
   */
  pattern?: string;
  /** Octal permissions. */
  mode: string;
  /** The owning user. */
  owner: string;
  /** The owning group. */
  group: string;
  /** systemd units reloaded when the file changes. */
  reload: string[];
  /** A private key or password, delivered in a parameter of its own. */
  key: boolean;
  /** How its content must read. */
  grammar: RuntimeGrammar;
}

function rule(name: string, grammar: RuntimeGrammar, reload: string[], readers: Readers = "everyone", key = false): RuntimeFileRule {
  const access =
    readers === "everyone" ? { mode: "0644", group: "root" } : readers === "nobody" ? { mode: "0600", group: "root" } : { mode: "0640", group: readers.group };
  return { name, mode: access.mode, owner: "root", group: access.group, reload, key, grammar };
}

/** A runtime file with its rule's mode, owner, units and kind: none is stated twice. */
function runtimeFile(name: string, content: string): RuntimeFile {
  const found = runtimeFileRule(name);
  if (found === undefined) throw new Error(`runtime file ${name} has no rule in RUNTIME_FILE_RULES`);
  return { name, content, mode: found.mode, owner: found.owner, group: found.group, reload: [...found.reload], key: found.key };
}

/** Runtime files the certificate timer reads: the key Pulumi keeps, and the names to cover. */
export const TLS_KEY_FILE = "tls/key.pem";
/** The names the certificate must cover, one per line, relative to the runtime directory. */
export const CERTIFICATE_NAMES_FILE = "certificate-names";

/** A DKIM key's name: one DNS label, as the config's selectors are. */
const DKIM_KEY_PATTERN = "dkim/[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\\.key";

/** The runtime directory's file of the DKIM key that signs with `selector`. */
export const dkimKeyFile = (selector: string): string => `dkim/${selector}.key`;

/** Every runtime file a stack may deliver, sorted by name: the one table of their names, modes, owners, units and grammars. */
export const RUNTIME_FILE_RULES: readonly RuntimeFileRule[] = [
  rule("aliases", "virtual-aliases", [UNITS.postfix]),
  rule(APP_PASSWORDS_FILE, "app-passwords", [UNITS.dovecot], { group: "dovecot" }),
  // Read by the backup job at each run: nothing to reload.
  rule(BACKUP_KEEP_FILE, "restic-keep", []),
  rule(RESTIC_PASSWORD_FILE, "password", [], "nobody", true),
  // Read by the certificate timer, which installs the key and renews when the names or key change.
  rule(CERTIFICATE_NAMES_FILE, "domain-names", []),
  rule("dkim-selectors", "dkim-selectors", [UNITS.rspamd]),
  { ...rule(dkimKeyFile("<selector>"), "pem", [UNITS.rspamd], { group: "_rspamd" }, true), pattern: DKIM_KEY_PATTERN },
  rule("domains", "postfix-map", [UNITS.postfix]),
  rule(LDAP_DOVECOT_BIND_FILE, "dovecot-ldap-bind", [UNITS.dovecot], { group: "dovecot" }, true),
  // Opened by proxymap, which runs as postfix.
  rule(LDAP_POSTFIX_MAP_FILE, "postfix-ldap", [UNITS.postfix], { group: "postfix" }, true),
  rule("mailboxes", "postfix-map", [UNITS.postfix]),
  rule(NFT_ADMIN_FILE, "nft-admin", [UNITS.nftables]),
  rule(RECIPIENT_ACCESS_FILE, "recipient-access", [UNITS.postfix]),
  rule("sender-logins", "postfix-map", [UNITS.postfix]),
  // Opened by Postfix's smtp processes as root, before they drop privileges.
  rule(SES_SMTP_CREDENTIALS_FILE, "sasl-passwords", [UNITS.postfix], "nobody", true),
  rule(TLS_KEY_FILE, "pem", [], "nobody", true),
  rule("users", "passwd-file", [UNITS.dovecot], { group: "dovecot" }),
  // nginx reads these on every request; nothing needs a reload.
  ...[...WEB_FILES].sort().map((name) => rule(`www/${name}`, "static", [])),
];

/** The rule of a runtime file's name: its own, or its family's. */
export function runtimeFileRule(name: string): RuntimeFileRule | undefined {
  return RUNTIME_FILE_RULES.find((r) => (r.pattern === undefined ? r.name === name : new RegExp(`^(?:${r.pattern})$`).test(name)));
}

/** The format of {@link runtimeFileTable}; mailstack-sync refuses any other. */
export const RUNTIME_FILE_TABLE_VERSION = 1;

/**
 * {@link RUNTIME_FILE_RULES} as the host bundle carries it (`HostEnv.paths.runtimeTable`), for
 * mailstack-sync: JSON `{"version": 1, "files": [rule, ...]}`.
 */
export function runtimeFileTable(): string {
  return `${JSON.stringify({ version: RUNTIME_FILE_TABLE_VERSION, files: RUNTIME_FILE_RULES }, null, 1)}\n`;
}

/** Names the host's certificate covers: the host, and each mail domain's web names (CNAMEs to it). */
export function certificateNames(config: MailConfig): string[] {
  return [config.hostname, ...config.domains.flatMap((d) => [`mta-sts.${d}`, `autoconfig.${d}`, `autodiscover.${d}`])];
}

/**
 * The only addresses of the host name and localhost (Postfix's alias domains, see main.cf):
 * system mail (cron, unattended-upgrades) goes to root@ the host name, and reaches the
 * postmaster; every other local part there is refused.
 */
export function hostRoleAliases(config: MailConfig): {
  /** The role address, e.g. root@ the host name. */
  address: string;
  /** Where its mail goes: the postmaster, or the abuse address. */
  to: string[];
}[] {
  return [config.hostname, "localhost"].flatMap((domain) => [
    ...["root", "postmaster", "mailer-daemon"].map((local) => ({ address: `${local}@${domain}`, to: [config.postmaster] })),
    { address: `abuse@${domain}`, to: [config.abuse] },
  ]);
}

/** Every runtime file for a config and its secrets, sorted by name; `env` places the files they name (tests). */
export function runtimeFiles(config: MailConfig, secrets: RuntimeSecrets, env: HostEnv = PRODUCTION_ENV): RuntimeFile[] {
  const pem = (key: string) => (key.endsWith("\n") ? key : `${key}\n`);
  const files = [
    runtimeFile("users", usersFile(config, secrets.passwordHashes)),
    runtimeFile(APP_PASSWORDS_FILE, appPasswordsFile(config, secrets.passwordHashes)),
    runtimeFile("domains", lines(config.domains.map((d) => `${d} OK`))),
    runtimeFile("mailboxes", lines(config.mailboxes.filter((m) => m.enabled).map((m) => `${m.address} OK`))),
    runtimeFile("aliases", aliasesFile(config)),
    runtimeFile(RECIPIENT_ACCESS_FILE, recipientAccess(config)),
    runtimeFile("sender-logins", senderLogins(config)),
    runtimeFile(dkimKeyFile(config.dkimSelector), pem(secrets.dkimPrivateKeyPem)),
    runtimeFile(TLS_KEY_FILE, pem(secrets.tlsPrivateKeyPem)),
    runtimeFile(CERTIFICATE_NAMES_FILE, lines(certificateNames(config))),
    ...Object.entries(webFiles(config)).map(([name, content]) => runtimeFile(`www/${name}`, content)),
    runtimeFile("dkim-selectors", lines(config.domains.map((d) => `${d} ${config.dkimSelector}`))),
    runtimeFile(NFT_ADMIN_FILE, nftablesAdmin(config)),
    runtimeFile(RESTIC_PASSWORD_FILE, `${secrets.resticPassword}\n`),
    ...ldapFiles(config, secrets.ldapBindPassword, env),
    ...sesFiles(config, secrets.sesSmtpCredentials),
    runtimeFile(BACKUP_KEEP_FILE, lines(Object.entries(config.backupKeep).filter(([, n]) => n > 0).map(([period, n]) => `--keep-${period}=${n}`))),
  ];
  return files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function sesFiles(config: MailConfig, credentials: SesSmtpCredentials | undefined): RuntimeFile[] {
  if (!config.ses?.outbound) return [];
  if (credentials === undefined) throw new Error("sesOutbound is on but the SES SMTP credentials are missing");
  return [runtimeFile(SES_SMTP_CREDENTIALS_FILE, sesSmtpCredentialsFile(config, credentials))];
}

/** Longest restic password a stack may carry (MailBackup generates 48 characters). */
export const MAX_RESTIC_PASSWORD_LENGTH = 128;

/** Largest value of one SSM parameter (the advanced tier; Intelligent-Tiering picks it only when needed). */
export const PARAMETER_LIMIT = 8192;

/** Where the runtime object is: what the host needs to fetch it. */
export interface RuntimeObjectLocation {
  /** The backup bucket. */
  bucket: string;
  /** The object's key, {@link HOST_OBJECTS}.runtime below the stack's {@link hostObjectsPrefix}. */
  key: string;
  /** The regional S3 endpoint of the bucket, e.g. https://s3.eu-west-1.amazonaws.com. */
  endpoint: string;
}

/** What mailstack-sync checks every runtime file against before it installs any. */
export interface Manifest {
  /** The manifest's format; mailstack-sync refuses any other. */
  version: 2;
  /** The object that carries every file that is not a key. */
  object: RuntimeObjectLocation;
  /** Every runtime file. */
  files: {
    /** Path relative to the runtime directory. */
    name: string;
    /** Where its content is: its own parameter (`files/<name>`), or the runtime object. */
    source: "parameter" | "object";
    /** Hex SHA-256 of the file. */
    sha256: string;
    /** Octal permissions. */
    mode: string;
    /** The owning user. */
    owner: string;
    /** The owning group. */
    group: string;
    /** systemd units reloaded when it changes. */
    reload: string[];
  }[];
}

/** The SSM parameter, below the stack's path, of a runtime file that is a key. */
export function keyParameterName(file: string): string {
  return `files/${file}`;
}

/**
 * The runtime files that are keys, each in a SecureString parameter of its own: known from
 * the config alone, so the parameters are declared before any secret resolves.
 */
export function keyFileNames(config: MailConfig): string[] {
  const placeholders = {
    passwordHashes: new Map(config.mailboxes.flatMap((m) => [m.address, ...m.appPasswords.map((a) => appPasswordKey(m.address, a.name))].map((key) => [key, "placeholder"]))),
    dkimPrivateKeyPem: "",
    tlsPrivateKeyPem: "",
    resticPassword: "",
    ldapBindPassword: "",
    sesSmtpCredentials: { username: "placeholder", password: "placeholder" },
  };
  return runtimeFiles(config, placeholders)
    .filter((f) => f.key)
    .map((f) => f.name);
}

/**
 * How the runtime files reach the host: each key (DKIM, TLS, the restic password) in a
 * SecureString parameter of its own, every other file (users, maps, web files) in one
 * KMS-encrypted object, and the manifest with each file's hash and where it is. A thousand
 * mailboxes take one object, not dozens of parameters.
 */
export function runtimeDelivery(
  files: RuntimeFile[],
  object: RuntimeObjectLocation,
): {
  /** One parameter per key. */
  parameters: {
    /** Its name below the stack's path, {@link keyParameterName}. */
    name: string;
    /** The key. */
    value: string;
  }[];
  /** The runtime object's document: `{"files": {<name>: <content>}}`. */
  object: string;
  /** The {@link Manifest} as JSON. */
  manifest: string;
} {
  const parameters: { name: string; value: string }[] = [];
  const inObject: Record<string, string> = {};
  const manifest: Manifest = { version: 2, object, files: [] };
  for (const file of files) {
    if (file.key) {
      if (Buffer.byteLength(file.content, "utf8") > PARAMETER_LIMIT) throw new Error(`runtime file ${file.name} is over ${PARAMETER_LIMIT} bytes, too large for an SSM parameter`);
      parameters.push({ name: keyParameterName(file.name), value: file.content });
    } else {
      inObject[file.name] = file.content;
    }
    manifest.files.push({
      name: file.name,
      source: file.key ? "parameter" : "object",
      sha256: createHash("sha256").update(file.content, "utf8").digest("hex"),
      mode: file.mode,
      owner: file.owner,
      group: file.group,
      reload: file.reload,
    });
  }
  return { parameters, object: JSON.stringify({ files: inObject }), manifest: JSON.stringify(manifest, null, 1) };
}
