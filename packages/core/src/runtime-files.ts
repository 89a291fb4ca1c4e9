import { createHash } from "node:crypto";
import type { MailConfig } from "./config";
import { NFT_ADMIN_FILE, nftablesAdmin } from "./firewall";
import { UNITS } from "./layout";
import { webFiles } from "./web";

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
  /** Dovecot password hash ({SCHEME}...) for every mailbox address. */
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
}

/** The restic password file, relative to the runtime directory. */
export const RESTIC_PASSWORD_FILE = "backup/restic-password";
/** restic forget's keep options, one per line, relative to the runtime directory. */
export const BACKUP_KEEP_FILE = "backup/keep";

const mib = (n: number) => `${n}M`;
const lines = (items: string[]) => items.map((l) => `${l}\n`).join("");

/** The Dovecot passwd-file; uid, gid and home come from the userdb's default_fields. */
function usersFile(config: MailConfig, hashes: ReadonlyMap<string, string>): string {
  return config.mailboxes
    .map((m) => {
      const hash = hashes.get(m.address);
      if (hash === undefined) throw new Error(`no password hash for ${m.address}`);
      // The components check hashes as secrets resolve; a ":" or a line break here would add a
      // field or a user to Dovecot's passwd-file, whoever calls this.
      if (!/^[\x21-\x39\x3b-\x7e]+$/.test(hash)) throw new Error(`the password hash for ${m.address} is not one word of printable characters without ":"`);
      const quota = m.quotaMiB === undefined ? "" : `userdb_quota_rule=*:storage=${mib(m.quotaMiB)}`;
      return `${m.address}:${hash}::::::${quota}\n`;
    })
    .join("");
}

/** Mailboxes each address delivers to, following aliases through other aliases. */
function localRecipients(config: MailConfig): Map<string, string[]> {
  const mailboxes = new Set(config.mailboxes.map((m) => m.address));
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
 * Who may send as which address (Postfix smtpd_sender_login_maps): a mailbox as itself, and
 * every mailbox an alias delivers to as that alias.
 */
function senderLogins(config: MailConfig): string {
  const recipients = localRecipients(config);
  const entries = config.mailboxes.map((m) => `${m.address} ${m.address}`);
  for (const a of config.aliases) {
    const logins = recipients.get(a.address) ?? [];
    if (logins.length > 0) entries.push(`${a.address} ${logins.join(",")}`);
  }
  return lines(entries.sort());
}

/**
 * Who may read a runtime file besides its owner, root: everyone, the group of the one daemon
 * that reads a secret, or nobody (a secret only root's own jobs read).
 */
type Readers = "everyone" | { group: string } | "nobody";

function runtimeFile(name: string, content: string, reload: string[], readers: Readers = "everyone", key = false): RuntimeFile {
  const access =
    readers === "everyone" ? { mode: "0644", group: "root" } : readers === "nobody" ? { mode: "0600", group: "root" } : { mode: "0640", group: readers.group };
  return { name, content, owner: "root", ...access, reload, key };
}

/** Runtime files the certificate timer reads: the key Pulumi keeps, and the names to cover. */
export const TLS_KEY_FILE = "tls/key.pem";
/** The names the certificate must cover, one per line, relative to the runtime directory. */
export const CERTIFICATE_NAMES_FILE = "certificate-names";

/** Names the host's certificate covers: the host, and each mail domain's web names (CNAMEs to it). */
export function certificateNames(config: MailConfig): string[] {
  return [config.hostname, ...config.domains.flatMap((d) => [`mta-sts.${d}`, `autoconfig.${d}`, `autodiscover.${d}`])];
}

/**
 * The only addresses of the host name and localhost (Postfix's alias domains, see main.cf):
 * system mail (cron, unattended-upgrades) goes to root@ the host name, and reaches the
 * postmaster; every other local part there is refused.
 */
export function hostRoleAliases(config: MailConfig): { address: string; to: string[] }[] {
  return [config.hostname, "localhost"].flatMap((domain) => [
    ...["root", "postmaster", "mailer-daemon"].map((local) => ({ address: `${local}@${domain}`, to: [config.postmaster] })),
    { address: `abuse@${domain}`, to: [config.abuse] },
  ]);
}

/** Every runtime file for a config and its secrets, sorted by name. */
export function runtimeFiles(config: MailConfig, secrets: RuntimeSecrets): RuntimeFile[] {
  const pem = (key: string) => (key.endsWith("\n") ? key : `${key}\n`);
  const postfix = [UNITS.postfix];
  const files = [
    runtimeFile("users", usersFile(config, secrets.passwordHashes), [UNITS.dovecot], { group: "dovecot" }),
    runtimeFile("domains", lines(config.domains.map((d) => `${d} OK`)), postfix),
    runtimeFile("mailboxes", lines(config.mailboxes.map((m) => `${m.address} OK`)), postfix),
    runtimeFile("aliases", lines([...config.aliases, ...hostRoleAliases(config)].map((a) => `${a.address} ${a.to.join(",")}`)), postfix),
    runtimeFile("sender-logins", senderLogins(config), postfix),
    runtimeFile(`dkim/${config.dkimSelector}.key`, pem(secrets.dkimPrivateKeyPem), [UNITS.rspamd], { group: "_rspamd" }, true),
    // Read by the certificate timer, which installs the key and renews when the names or key change.
    runtimeFile(TLS_KEY_FILE, pem(secrets.tlsPrivateKeyPem), [], "nobody", true),
    runtimeFile(CERTIFICATE_NAMES_FILE, lines(certificateNames(config)), []),
    // nginx reads these on every request; nothing needs a reload.
    ...Object.entries(webFiles(config)).map(([name, content]) => runtimeFile(`www/${name}`, content, [])),
    runtimeFile("dkim-selectors", lines(config.domains.map((d) => `${d} ${config.dkimSelector}`)), [UNITS.rspamd]),
    runtimeFile(NFT_ADMIN_FILE, nftablesAdmin(config), [UNITS.nftables]),
    // The backup job reads both at each run, so a change needs no reload.
    runtimeFile(RESTIC_PASSWORD_FILE, `${secrets.resticPassword}\n`, [], "nobody", true),
    runtimeFile(BACKUP_KEEP_FILE, lines(Object.entries(config.backupKeep).filter(([, n]) => n > 0).map(([period, n]) => `--keep-${period}=${n}`)), []),
  ];
  return files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
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
  const placeholders = { passwordHashes: new Map(config.mailboxes.map((m) => [m.address, "placeholder"])), dkimPrivateKeyPem: "", tlsPrivateKeyPem: "", resticPassword: "" };
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
