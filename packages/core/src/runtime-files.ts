import { createHash } from "node:crypto";
import { MAX_PASSWORD_HASH_LENGTH, type MailConfig } from "./config";
import { NFT_ADMIN_FILE, nftablesAdmin } from "./firewall";
import { UNITS } from "./layout";
import { BCRYPT_COST } from "./passwords";
import { webFiles } from "./web";

/**
 * A file that changes day to day (users, aliases, keys). It reaches the host through SSM
 * Parameter Store, never through user data, and is installed into the runtime directory
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

function runtimeFile(name: string, content: string, reload: string[], readers: Readers = "everyone"): RuntimeFile {
  const access =
    readers === "everyone" ? { mode: "0644", group: "root" } : readers === "nobody" ? { mode: "0600", group: "root" } : { mode: "0640", group: readers.group };
  return { name, content, owner: "root", ...access, reload };
}

/** Runtime files the certificate timer reads: the key Pulumi keeps, and the names to cover. */
export const TLS_KEY_FILE = "tls/key.pem";
/** The names the certificate must cover, one per line, relative to the runtime directory. */
export const CERTIFICATE_NAMES_FILE = "certificate-names";

/** Names the host's certificate covers: the host, and each mail domain's web names (CNAMEs to it). */
export function certificateNames(config: MailConfig): string[] {
  return [config.hostname, ...config.domains.flatMap((d) => [`mta-sts.${d}`, `autoconfig.${d}`, `autodiscover.${d}`])];
}

/** Every runtime file for a config and its secrets, sorted by name. */
export function runtimeFiles(config: MailConfig, secrets: RuntimeSecrets): RuntimeFile[] {
  const pem = (key: string) => (key.endsWith("\n") ? key : `${key}\n`);
  const postfix = [UNITS.postfix];
  const files = [
    runtimeFile("users", usersFile(config, secrets.passwordHashes), [UNITS.dovecot], { group: "dovecot" }),
    runtimeFile("domains", lines(config.domains.map((d) => `${d} OK`)), postfix),
    runtimeFile("mailboxes", lines(config.mailboxes.map((m) => `${m.address} OK`)), postfix),
    runtimeFile("aliases", lines(config.aliases.map((a) => `${a.address} ${a.to.join(",")}`)), postfix),
    // Mail for root and other system accounts (cron, unattended-upgrades) reaches the postmaster.
    runtimeFile("local-aliases", lines(["root", "postmaster", "mailer-daemon", "abuse"].map((u) => `${u} ${config.postmaster}`)), postfix),
    runtimeFile("sender-logins", senderLogins(config), postfix),
    runtimeFile(`dkim/${config.dkimSelector}.key`, pem(secrets.dkimPrivateKeyPem), [UNITS.rspamd], { group: "_rspamd" }),
    // Read by the certificate timer, which installs the key and renews when the names or key change.
    runtimeFile(TLS_KEY_FILE, pem(secrets.tlsPrivateKeyPem), [], "nobody"),
    runtimeFile(CERTIFICATE_NAMES_FILE, lines(certificateNames(config)), []),
    // nginx reads these on every request; nothing needs a reload.
    ...Object.entries(webFiles(config)).map(([name, content]) => runtimeFile(`www/${name}`, content, [])),
    runtimeFile("dkim-selectors", lines(config.domains.map((d) => `${d} ${config.dkimSelector}`)), [UNITS.rspamd]),
    runtimeFile(NFT_ADMIN_FILE, nftablesAdmin(config), [UNITS.nftables]),
    // The backup job reads both at each run, so a change needs no reload.
    runtimeFile(RESTIC_PASSWORD_FILE, `${secrets.resticPassword}\n`, [], "nobody"),
    runtimeFile(BACKUP_KEEP_FILE, lines(Object.entries(config.backupKeep).filter(([, n]) => n > 0).map(([period, n]) => `--keep-${period}=${n}`)), []),
  ];
  return files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Largest value of one SSM parameter (the advanced tier; Intelligent-Tiering picks it only when needed). */
export const PART_LIMIT = 8192;
const BCRYPT_HASH_LENGTH = `{BLF-CRYPT}$2b$${BCRYPT_COST}$`.length + 53;
// A PEM RSA-4096 PKCS#8 key is ~3.3 KB; allow room so a later key size needs no new layout.
const DKIM_KEY_BOUND = 3400;
// An ECDSA P-384 key in PEM is ~300 bytes; RSA-4096 would be ~3.3 KB.
const TLS_KEY_BOUND = 3400;
/** Longest restic password a stack may carry (MailBackup generates 48 characters). */
export const MAX_RESTIC_PASSWORD_LENGTH = 128;

/** Secrets of the largest size each can have, so a layout computed from them bounds the real one. */
function boundingSecrets(config: MailConfig): RuntimeSecrets {
  return {
    passwordHashes: new Map(
      config.mailboxes.map((m) => [
        m.address,
        "x".repeat(m.credential === "password" ? BCRYPT_HASH_LENGTH : MAX_PASSWORD_HASH_LENGTH),
      ]),
    ),
    dkimPrivateKeyPem: "x".repeat(DKIM_KEY_BOUND),
    tlsPrivateKeyPem: "x".repeat(TLS_KEY_BOUND),
    resticPassword: "x".repeat(MAX_RESTIC_PASSWORD_LENGTH),
  };
}

/** How the runtime files are split into SSM parameters. */
export interface ParameterLayout {
  /** Number of SSM parameters each runtime file is split into, by file name. */
  parts: Record<string, number>;
}

function partHeader(name: string, index: number, count: number): string {
  return `# mailstack ${name} ${index + 1}/${count}\n`;
}

/**
 * How many parameters each runtime file needs. It depends only on the plain config, so the
 * parameters can be declared before the secrets resolve, and the real content always fits.
 */
export function parameterLayout(config: MailConfig): ParameterLayout {
  const parts: Record<string, number> = {};
  for (const file of runtimeFiles(config, boundingSecrets(config))) {
    const size = Buffer.byteLength(file.content, "utf8");
    let count = 1;
    // The header shrinks each part's room, and grows by a digit now and then; iterate to a fit.
    while (Math.ceil(size / count) > PART_LIMIT - Buffer.byteLength(partHeader(file.name, count - 1, count))) count++;
    parts[file.name] = count;
  }
  return { parts };
}

/** One SSM parameter's name and value. */
export interface ParameterValue {
  /** Path below the stack's parameter prefix, e.g. `files/users/0` or `manifest`. */
  name: string;
  /** The value: a part header line, then that part of the file. */
  value: string;
}

/** What mailstack-sync checks the parameters against before it installs anything. */
export interface Manifest {
  /** The manifest's format; mailstack-sync refuses any other. */
  version: 1;
  /** Every runtime file. */
  files: {
    /** Path relative to the runtime directory. */
    name: string;
    /** How many parameters it is split into. */
    parts: number;
    /** Hex SHA-256 of the whole file. */
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

/** Path below the stack prefix of one part of a runtime file. */
export function partName(file: string, index: number): string {
  return `files/${file}/${index}`;
}

/**
 * Splits runtime files into parameter values following a layout, plus the manifest the host
 * checks every file against before installing anything.
 */
export function parameterValues(
  files: RuntimeFile[],
  layout: ParameterLayout,
): {
  /** Every part of every file, in file order. */
  parts: ParameterValue[];
  /** The {@link Manifest} as JSON. */
  manifest: string;
} {
  const parts: ParameterValue[] = [];
  const manifest: Manifest = { version: 1, files: [] };
  for (const file of files) {
    const count = layout.parts[file.name];
    if (count === undefined) throw new Error(`runtime file ${file.name} is missing from the parameter layout`);
    // Parts are cut at byte offsets, which is only safe for ASCII; validation keeps it so.
    if (/[^\x20-\x7e\n]/.test(file.content)) throw new Error(`runtime file ${file.name} is not printable ASCII`);
    const bytes = Buffer.from(file.content, "utf8");
    const size = Math.ceil(bytes.length / count);
    for (let i = 0; i < count; i++) {
      const header = partHeader(file.name, i, count);
      const value = header + bytes.subarray(i * size, (i + 1) * size).toString("utf8");
      if (Buffer.byteLength(value) > PART_LIMIT) {
        throw new Error(`runtime file ${file.name} outgrew its parameter layout (${bytes.length} bytes in ${count} parts)`);
      }
      parts.push({ name: partName(file.name, i), value });
    }
    manifest.files.push({
      name: file.name,
      parts: count,
      sha256: createHash("sha256").update(bytes).digest("hex"),
      mode: file.mode,
      owner: file.owner,
      group: file.group,
      reload: file.reload,
    });
  }
  return { parts, manifest: JSON.stringify(manifest, null, 1) };
}

