import { spawn, spawnSync, type SpawnSyncOptions } from "node:child_process";
import { accessSync, chmodSync, chownSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { appPasswordKey, certificateNames, cloudInit, hashPassword, resticRepositoryUrl, type HostEnv, type HostFile, hostFiles, type HostParams, type MailConfig, type MailConfigInput, PRODUCTION_ENV, runtimeFiles, type RuntimeSecrets, type SesSmtpCredentials, sesSmtpPassword } from "@mailstack/core";
import { load } from "js-yaml";

/**
 * Tools the host tests run, with the Debian package that provides each. A test that checks
 * rendered files with the real daemons' own parsers must not pass because a parser is
 * absent: a missing tool fails the suite and names what to install.
 */
const TOOLS: Record<string, { pkg: string; command?: string[] }> = {
  bash: { pkg: "bash" },
  getent: { pkg: "libc-bin" },
  "cloud-init": { pkg: "cloud-init" },
  "named-checkzone": { pkg: "bind9-utils" },
  kzonecheck: { pkg: "knot-dnssecutils" },
  knotd: { pkg: "knot" },
  dig: { pkg: "dnsutils" },
  postfix: { pkg: "postfix" },
  postconf: { pkg: "postfix" },
  postqueue: { pkg: "postfix" },
  sendmail: { pkg: "postfix" },
  "smtp-source": { pkg: "postfix" },
  dovecot: { pkg: "dovecot-core" },
  "dovecot lmtp": { pkg: "dovecot-lmtpd", command: ["test", "-x", "/usr/lib/dovecot/lmtp"] },
  "dovecot imap": { pkg: "dovecot-imapd", command: ["test", "-x", "/usr/lib/dovecot/imap"] },
  "dovecot pop3": { pkg: "dovecot-pop3d", command: ["test", "-x", "/usr/lib/dovecot/pop3"] },
  rspamd: { pkg: "rspamd" },
  rspamc: { pkg: "rspamd" },
  "redis-server": { pkg: "redis-server" },
  "redis-cli": { pkg: "redis-tools" },
  unbound: { pkg: "unbound" },
  rsyslogd: { pkg: "rsyslog" },
  logger: { pkg: "bsdutils" },
  postmap: { pkg: "postfix" },
  // PLAIN and LOGIN for Postfix's SASL client (Cyrus), which authenticates to a relay such as SES.
  "postfix sasl client": { pkg: "libsasl2-modules", command: ["sh", "-c", "ls /usr/lib/*/sasl2/libplain.so.2 /usr/lib/*/sasl2/liblogin.so.2"] },
  doveconf: { pkg: "dovecot-core" },
  doveadm: { pkg: "dovecot-core" },
  sievec: { pkg: "dovecot-sieve" },
  rspamadm: { pkg: "rspamd" },
  nft: { pkg: "nftables" },
  postsrsd: { pkg: "postsrsd" },
  ip: { pkg: "iproute2" },
  ss: { pkg: "iproute2" },
  "unbound-checkconf": { pkg: "unbound" },
  "fail2ban-client": { pkg: "fail2ban" },
  "fail2ban-server": { pkg: "fail2ban" },
  "fail2ban-regex": { pkg: "fail2ban" },
  shellcheck: { pkg: "shellcheck" },
  openssl: { pkg: "openssl" },
  nginx: { pkg: "nginx" },
  xmllint: { pkg: "libxml2-utils" },
  flock: { pkg: "util-linux" },
  setpriv: { pkg: "util-linux" },
  "systemd-analyze": { pkg: "systemd" },
  restic: { pkg: "restic" },
  "apt-config": { pkg: "apt" },
  losetup: { pkg: "mount" },
  mount: { pkg: "mount" },
  umount: { pkg: "mount" },
  mountpoint: { pkg: "util-linux" },
  findmnt: { pkg: "util-linux" },
  blkid: { pkg: "util-linux" },
  "mkfs.ext4": { pkg: "e2fsprogs" },
  sfdisk: { pkg: "fdisk" },
  mkswap: { pkg: "util-linux" },
  // Debian's interpreter, not a pyenv or venv one: the host runs the sync script with it.
  python3: { pkg: "python3", command: ["/usr/bin/python3", "-c", "import sys"] },
  boto3: { pkg: "python3-boto3", command: ["/usr/bin/python3", "-c", "import boto3, botocore"] },
  "python3-systemd": { pkg: "python3-systemd", command: ["/usr/bin/python3", "-c", "from systemd import journal"] },
  "systemd-journald": { pkg: "systemd", command: ["test", "-x", "/lib/systemd/systemd-journald"] },
  "systemd-journal-remote": { pkg: "systemd-journal-remote", command: ["test", "-x", "/lib/systemd/systemd-journal-remote"] },
  journalctl: { pkg: "systemd" },
  unshare: { pkg: "util-linux" },
  "cloud-init (python)": { pkg: "cloud-init", command: ["/usr/bin/python3", "-c", "import cloudinit.user_data"] },
  "systemd-nspawn": { pkg: "systemd-container" },
  mmdebstrap: { pkg: "mmdebstrap" },
  pebble: { pkg: "pebble" },
  slapd: { pkg: "slapd" },
  slapadd: { pkg: "slapd" },
  ldapdelete: { pkg: "ldap-utils" },
  ldapwhoami: { pkg: "ldap-utils" },
  "dovecot ldap": { pkg: "dovecot-ldap", command: ["test", "-e", "/usr/lib/dovecot/modules/auth/libauthdb_ldap.so"] },
  "postfix ldap": { pkg: "postfix-ldap", command: ["test", "-e", "/usr/lib/postfix/postfix-ldap.so"] },
  nsenter: { pkg: "util-linux" },
};

/** PATH for every tool the tests run: daemons' tools live in sbin, which a user's PATH may lack. */
export const TOOL_PATH = [...new Set([...(process.env.PATH ?? "").split(":").filter(Boolean), "/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"])].join(":");

function onPath(name: string): boolean {
  return TOOL_PATH.split(":").some((dir) => {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const INSTALL_HINT = "run scripts/install-test-deps.sh";

/**
 * Call first thing in a suite's describe block. Throws (failing the whole suite, never
 * skipping it, on CI or not) when a tool is missing, naming its Debian package.
 */
export function requireTools(...names: string[]): void {
  const missing: string[] = [];
  for (const name of names) {
    const tool = TOOLS[name];
    if (!tool) throw new Error(`requireTools: unknown tool ${name}; add it and its Debian package to test/support/tools.ts`);
    const ok = tool.command ? spawnSync(tool.command[0], tool.command.slice(1), { stdio: "ignore" }).status === 0 : onPath(name);
    if (!ok) missing.push(`${name} (Debian package ${tool.pkg})`);
  }
  if (missing.length > 0) {
    throw new Error(`missing test tools: ${missing.join(", ")}; ${INSTALL_HINT}`);
  }
}

/** For suites that load firewall rules into a namespace or mount loop devices. */
export function requireRoot(why: string): void {
  if (process.getuid?.() !== 0) {
    throw new Error(`this suite must run as root (${why}); run the host tests as root, after ${INSTALL_HINT}`);
  }
}

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; a command that cannot start at all throws. */
export function run(command: string, args: string[], options: SpawnSyncOptions & { input?: string | Buffer } = {}): RunResult {
  const result = spawnSync(command, args, {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    ...options,
    // A caller's own PATH wins (a test that stands in for a command); otherwise TOOL_PATH.
    env: { ...(options.env ?? process.env), PATH: options.env?.PATH ?? TOOL_PATH },
  });
  if (result.error) throw result.error;
  return {
    status: result.status ?? -1,
    stdout: String(result.stdout ?? ""),
    stderr: String(result.stderr ?? ""),
  };
}

/** Runs a command and throws with its output unless it exits 0. */
export function runOk(command: string, args: string[], options: SpawnSyncOptions & { input?: string | Buffer } = {}): RunResult {
  const result = run(command, args, options);
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${result.status}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
  }
  return result;
}

/**
 * A fresh directory under /tmp with a short name: Dovecot's and Postfix's unix sockets live
 * below it, and socket paths are limited to 107 bytes.
 */
export function tempRoot(tag = "ms"): string {
  const root = mkdtempSync(`/tmp/${tag}-`);
  // Daemons drop privileges (dovecot, postfix, _rspamd) and must traverse it; mkdtemp gives 0700.
  chmodSync(root, 0o755);
  return root;
}

/** PRODUCTION_ENV with every path moved below `root` (ports and ids unchanged). */
export function tempEnv(root: string): HostEnv {
  const paths = Object.fromEntries(Object.entries(PRODUCTION_ENV.paths).map(([k, v]) => [k, `${root}${v}`])) as HostEnv["paths"];
  return { ...PRODUCTION_ENV, paths };
}

export const TEST_PARAMS: HostParams = {
  region: "us-east-1",
  ssmPath: "/mailstack/test/mail",
  dataVolumeId: "vol-0123456789abcdef0",
  backupRepository: resticRepositoryUrl("mailstack-backup-test", "us-east-1", "amazonaws.com"),
  // Used only by configs with sesInbound, whose importer empties it.
  sesInboundBucket: "mailstack-ses-inbound-test",
};

export interface RenderedHost {
  root: string;
  env: HostEnv;
  files: HostFile[];
  /** Where the file that production keeps at `productionPath` lies in the temp root. */
  path(productionPath: string): string;
  /** The rendered file whose production path is `productionPath`. */
  file(productionPath: string): HostFile;
  cleanup(): void;
}

/** The settings file (/etc/default/mailstack) of a rendered host, as the units' environment. */
export function hostSettings(host: RenderedHost): Record<string, string> {
  return Object.fromEntries(
    readFileSync(host.path("/etc/default/mailstack"), "utf8")
      .split("\n")
      .filter((l) => /^[A-Z_0-9]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 2, -1)]),
  );
}

/**
 * Renders the host files of a config into a fresh temp root, each at <root><production path>
 * with its mode, with the HostEnv pointing there (so Postfix's and Dovecot's paths, and the
 * runtime directory, are the temp ones). With `tls` (default) a self-signed certificate and
 * key for the certificate names are created at the env's TLS paths, which Dovecot and nginx
 * read while parsing their configs.
 */
export function renderHost(config: MailConfig, options: { params?: HostParams; tls?: boolean } = {}): RenderedHost {
  const root = tempRoot();
  const env = tempEnv(root);
  const params = options.params ?? TEST_PARAMS;
  // The host bundle's files, and the user data's own (the first-boot program and its unit).
  const bootFiles = (load(cloudInit(config, params, env)) as { write_files: { path: string; content: string; permissions?: string; defer?: boolean }[] }).write_files
    .filter((f) => f.defer)
    .map((f): HostFile => ({ path: f.path, content: f.content, mode: f.permissions ?? "0644", owner: "root:root", reload: [] }));
  const files = [...hostFiles(config, params, env), ...bootFiles];
  const located = (path: string) => (path.startsWith(`${root}/`) ? path : `${root}${path}`);
  for (const f of files) {
    const dest = located(f.path);
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, f.content);
    chmodSync(dest, parseInt(f.mode, 8));
  }
  if (options.tls ?? true) selfSignedPair(env.paths.tlsCert, env.paths.tlsKey, certificateNames(config));
  const byProduction = new Map(files.map((f) => [located(f.path).slice(root.length), f]));
  return {
    root,
    env,
    files,
    path: (p) => `${root}${p}`,
    file: (p) => {
      const f = byProduction.get(p);
      if (!f) throw new Error(`no rendered host file at ${p}; have ${[...byProduction.keys()].join(", ")}`);
      return f;
    },
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** The numeric id of a system group (runtime files belong to the daemon that reads them). */
export function groupId(name: string): number {
  return Number(runOk("getent", ["group", name]).stdout.split(":")[2]);
}

/** The restic repository password of test hosts. */
export const TEST_RESTIC_PASSWORD = "restic test repository passphrase";

/**
 * The IAM access key of test stacks' SES relay (sesOutbound): AWS's documentation example key,
 * so nothing real. Its SMTP credentials are what the relay's stand-in accepts.
 */
export const TEST_SES_ACCESS_KEY = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" };

/** The SES SMTP credentials of TEST_SES_ACCESS_KEY in `region`, as the stack's components derive them. */
export function testSesSmtpCredentials(region: string): SesSmtpCredentials {
  return { username: TEST_SES_ACCESS_KEY.accessKeyId, password: sesSmtpPassword(TEST_SES_ACCESS_KEY.secretAccessKey, region) };
}

/** The hashes of a test config's mailboxes and app passwords, as the components make them: plain ones hashed, hashes as given. */
export function testPasswordHashes(input: MailConfigInput, config: MailConfig): Pick<RuntimeSecrets, "passwordHashes"> {
  const hash = (given: { password?: unknown; passwordHash?: unknown }, credential: string, key: string): [string, string] => [
    key,
    credential === "password" ? hashPassword(String(given.password), key, TEST_PARAMS.ssmPath) : String(given.passwordHash),
  ];
  return {
    passwordHashes: new Map(
      config.mailboxes.flatMap((m) => {
        const given = input.mailboxes[m.index];
        return [hash(given, m.credential, m.address), ...m.appPasswords.map((a, i) => hash(given.appPasswords![i], a.credential, appPasswordKey(m.address, a.name)))];
      }),
    ),
  };
}

/**
 * Installs a config's runtime files into the host's runtime directory as the sync does, with
 * their modes and groups: mailboxes hashed by the core (or given as hashes), the given keys,
 * TEST_RESTIC_PASSWORD and, with sesOutbound, the SES SMTP credentials of TEST_SES_ACCESS_KEY
 * unless `keys` has others.
 */
export function installRuntimeFiles(host: RenderedHost, input: MailConfigInput, config: MailConfig, keys: Omit<RuntimeSecrets, "passwordHashes" | "resticPassword">): void {
  const ldapBindPassword = input.ldap && String(input.ldap.bindPassword);
  const sesSmtpCredentials = config.ses?.outbound ? testSesSmtpCredentials(config.ses.region) : undefined;
  for (const f of runtimeFiles(config, { ...testPasswordHashes(input, config), sesSmtpCredentials, ...keys, resticPassword: TEST_RESTIC_PASSWORD, ldapBindPassword }, host.env)) {
    const dest = join(host.env.paths.runtime, f.name);
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, f.content);
    chmodSync(dest, parseInt(f.mode, 8));
    chownSync(dest, 0, groupId(f.group));
  }
}

/**
 * nginx's main configuration for a rendered host: Debian's /etc/nginx/nginx.conf (as on
 * Ubuntu, it sets the http-level defaults, mime types included, that mailstack's site builds
 * on) with its pid and log paths moved below the temp root, info-level errors (nginx logs
 * refused handshakes only there), conf.d taken from the rendered host, and no sites-enabled
 * (the host's bootstrap removes the default site). Returns its path.
 */
export function nginxMainConf(host: RenderedHost): string {
  const replacements: [string, string][] = [
    ["pid /run/nginx.pid;", `pid ${host.root}/run/nginx.pid;`],
    ["error_log /var/log/nginx/error.log;", `error_log ${host.root}/var/log/nginx/error.log info;`],
    ["access_log /var/log/nginx/access.log;", `access_log ${host.root}/var/log/nginx/access.log;`],
    ["include /etc/nginx/conf.d/*.conf;", `include ${host.path("/etc/nginx/conf.d")}/*.conf;`],
    ["include /etc/nginx/sites-enabled/*;", ""],
  ];
  let conf = readFileSync("/etc/nginx/nginx.conf", "utf8");
  for (const [from, to] of replacements) {
    if (conf.split(from).length !== 2) throw new Error(`Debian's /etc/nginx/nginx.conf no longer has exactly one "${from}"; adapt nginxMainConf`);
    conf = conf.replace(from, to);
  }
  mkdirSync(join(host.root, "run"), { recursive: true });
  mkdirSync(join(host.root, "var/log/nginx"), { recursive: true });
  const file = host.path("/etc/nginx/nginx-test.conf");
  writeFileSync(file, conf);
  return file;
}

/** A self-signed ECDSA certificate and key for `names` (the first is the subject's CN). */
export function selfSignedPair(certPath: string, keyPath: string, names: string[]): void {
  mkdirSync(dirname(certPath), { recursive: true });
  mkdirSync(dirname(keyPath), { recursive: true });
  runOk("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
    "-subj", `/CN=${names[0]}`, "-addext", `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`, "-keyout", keyPath, "-out", certPath,
  ]);
  chmodSync(keyPath, 0o600);
}

/**
 * Runs a command without blocking the event loop, for commands that talk to a server the
 * test itself serves (spawnSync would starve it).
 */
export function runAsync(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: { ...(options.env ?? process.env), PATH: options.env?.PATH ?? TOOL_PATH }, stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    child.stdin?.end(options.input);
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ status: code ?? (signal ? 128 : -1), stdout, stderr }));
  });
}
