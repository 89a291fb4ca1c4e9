/**
 * A whole mail host on one machine: the core renders a config, and real Postfix, Dovecot,
 * rspamd, redis, unbound and nginx from Debian's packages run the rendered files, without systemd,
 * inside a network namespace of the stack's own. The namespace gives the daemons their
 * production ports, keeps every DNS query and connection inside it (unbound answers only
 * the test zones), and has "internet" source addresses (TEST-NET ranges on its loopback) so
 * that clients count as external to rspamd and to Postfix's mynetworks.
 *
 * What differs from the host, all of it set here and nowhere else:
 * - paths lie under a temporary root (HostEnv), and each daemon logs to a file there;
 * - unbound serves the stack's own DNS records (from the core) instead of recursing;
 * - rspamd also honours its non-reject GTUBE test patterns (override.d, never on a host:
 *   they let a sender choose the verdict), so tests can ask for "add header";
 * - daemons are started directly rather than by systemd units;
 * - nginx runs mailstack's site under Debian's nginx.conf with only its pid and log paths
 *   moved, info-level errors, and conf.d read from the temp root (tools.ts nginxMainConf).
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type DnsRecord,
  dkimPublicKeyFromPem,
  dnsRecords,
  type MailConfig,
  type MailConfigInput,
  parseConfig,
  redisListenArgs,
} from "@mailstack/core";
import { installRuntimeFiles, nginxMainConf, type RenderedHost, renderHost, requireRoot, requireTools, run, runAsync, runOk, type RunResult } from "./tools";
import { unitSections } from "./unit-file";
import { POSTSRSD } from "@mailstack/core";

/** `text` as a regular expression that matches exactly it. */
export const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The mail host's public address in the test zone (TEST-NET-1), on the namespace's loopback. */
export const HOST_IP = "192.0.2.25";
/** "Internet" clients: any address of TEST-NET-2 can be a source. */
export const source = (n: number): string => `198.51.100.${n}`;
/**
 * A sending domain outside the stack, whose mail server is OUTSIDE_IP (with matching
 * reverse DNS), named by its SPF record, with DMARC p=reject.
 */
export const OUTSIDE_DOMAIN = "outside.example";
export const OUTSIDE_IP = source(20);
/** An "internet" address that Spamhaus ZEN lists (as unbound answers it here). */
export const LISTED_IP = source(66);
/** Another outside domain that sends from nowhere (SPF -all) and publishes no DMARC policy. */
export const NO_DMARC_DOMAIN = "no-dmarc.example";

/**
 * Which daemons run. `full` is the production pipeline. The other two exist for the
 * pipeline benchmark's baselines: `unfiltered` drops the milter (no rspamd), `discard`
 * also replaces LMTP delivery by Postfix's discard transport.
 */
export type Variant = "full" | "unfiltered" | "discard";

/** A DKIM key pair in PEM (PKCS#8 private key, SubjectPublicKeyInfo public key). */
export interface DkimKeyPair {
  privateKey: string;
  publicKey: string;
}

export interface StackOptions {
  variant?: Variant;
  /** main.cf settings applied with postconf -e after rendering, for tests that say why. */
  postfixOverrides?: Record<string, string>;
  /**
   * DKIM keys by selector, for tests whose keys must outlive one stack (rotation: the key a
   * stack signs with is published by the next one). Selectors of the config not given here
   * get a fresh key; only the signing selector's private key reaches the host.
   */
  dkimKeys?: Record<string, DkimKeyPair>;
  /**
   * More names for the stack's DNS to answer, beside the core's records: hosts outside the
   * stack that a test stands in for (an SES endpoint, say), reachable from the namespace.
   */
  extraRecords?: ExtraRecord[];
}

/** A record for StackOptions.extraRecords (TTL 300 unless given; MX priority 10 unless given). */
export type ExtraRecord = Pick<DnsRecord, "name" | "type" | "content"> & Partial<Pick<DnsRecord, "ttl" | "priority">>;

export function newDkimKey(): DkimKeyPair {
  return generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
}

interface Daemon {
  name: string;
  /** Stops it and waits until it is gone. */
  stop(): Promise<void>;
}

export interface SmtpStep {
  starttls?: boolean;
  data?: string;
  raw?: string;
  wait?: number;
}

export interface SmtpSession {
  banner: string;
  replies: { sent: string; reply: string }[];
  tls: string | null;
}

export interface HttpRequest {
  port?: number;
  servername: string;
  path: string;
  method?: string;
  body?: string;
  /** PEM trust anchor; the certificate must also name `servername`. */
  ca?: string;
  plain?: boolean;
}

export interface HttpResponse {
  status?: number;
  headers?: Record<string, string | string[]>;
  body?: string;
  error?: string;
}

export interface ImapMessage {
  uid: number;
  flags: string[];
  source: string;
}

/** Every program a stack runs; a missing one fails the suite (tools.ts), never skips it. */
const STACK_TOOLS = [
  "ip", "openssl", "getent", "postfix", "postconf", "postqueue", "dovecot", "dovecot lmtp", "dovecot imap", "dovecot pop3",
  "doveadm", "doveconf", "sievec", "rspamd", "rspamc", "rspamadm", "redis-server", "redis-cli", "unbound", "nginx", "setpriv",
];

export class TestStack {
  /** Every published DKIM key pair, by selector. */
  readonly dkimKeys: Record<string, DkimKeyPair>;
  readonly dkimPrivateKey: string;
  readonly dkimPublicKey: string;
  readonly records: DnsRecord[];
  private readonly daemons: Daemon[] = [];
  private dovecotRunning = false;
  private outsidePassed = false;

  private constructor(
    readonly input: MailConfigInput,
    readonly config: MailConfig,
    readonly host: RenderedHost,
    readonly ns: string,
    readonly variant: Variant,
    dkimKeys: Record<string, DkimKeyPair> = {},
  ) {
    this.dkimKeys = Object.fromEntries(config.dkimSelectors.map((s) => [s, dkimKeys[s] ?? newDkimKey()]));
    this.dkimPrivateKey = this.dkimKeys[config.dkimSelector].privateKey;
    this.dkimPublicKey = dkimPublicKeyFromPem(this.dkimKeys[config.dkimSelector].publicKey);
    const dkimPublicKeys = Object.fromEntries(Object.entries(this.dkimKeys).map(([s, k]) => [s, dkimPublicKeyFromPem(k.publicKey)]));
    this.records = dnsRecords(config, { ipv4: HOST_IP, dkimPublicKeys });
  }

  static async start(input: MailConfigInput, options: StackOptions = {}): Promise<TestStack> {
    requireRoot("the stack runs in a network namespace of its own");
    requireTools(...STACK_TOOLS);
    const config = parseConfig(input);
    const host = renderHost(config);
    const ns = `ms-${host.root.split("-").pop()}`;
    const stack = new TestStack(input, config, host, ns, options.variant ?? "full", options.dkimKeys);
    try {
      await stack.boot(options);
    } catch (e) {
      const logs = stack.logs();
      await stack.stop();
      throw new Error(`${(e as Error).message}\n${logs}`, { cause: e });
    }
    return stack;
  }

  get root(): string {
    return this.host.root;
  }

  get paths() {
    return this.host.env.paths;
  }

  /** Runs a command inside the namespace and waits for it. */
  exec(command: string, args: string[], input?: string): RunResult {
    return run("ip", ["netns", "exec", this.ns, command, ...args], { input });
  }

  execAsync(command: string, args: string[]): Promise<RunResult> {
    return runAsync("ip", ["netns", "exec", this.ns, command, ...args]);
  }

  private async client<T>(fn: string, args: unknown): Promise<T> {
    const r = await runAsync("ip", ["netns", "exec", this.ns, process.execPath, join(__dirname, "netns-client.mjs")], { input: JSON.stringify({ fn, args }) });
    if (r.status !== 0) throw new Error(`netns client ${fn} failed (${r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  /** One raw SMTP session against the stack (see netns-client.mjs for the steps). */
  smtp(args: {
    port: number;
    source: string;
    steps: (string | SmtpStep)[];
    implicitTls?: boolean;
    host?: string;
    tls?: Record<string, unknown>;
    timeoutMs?: number;
    pregreet?: string;
  }): Promise<SmtpSession> {
    return this.client("smtp", args);
  }

  /** IMAPS with a real client library (imapflow). */
  imap(args: {
    user: string;
    pass: string;
    source: string;
    actions: ({ list: string } | { move: [string, number, string] } | { status: string })[];
    port?: number;
  }): Promise<{ results?: unknown[]; error?: string; response?: string | null }> {
    return this.client("imap", { port: this.host.env.ports.imaps, ...args });
  }

  /** One HTTP request to 127.0.0.1 in the namespace (see netns-client.mjs). */
  http(args: HttpRequest): Promise<HttpResponse> {
    return this.client("http", args);
  }

  /** Several HTTP requests from one client process, in order. */
  httpEach(requests: HttpRequest[]): Promise<HttpResponse[]> {
    return this.client("httpEach", { requests });
  }

  /** Messages of one mailbox folder, read over IMAPS. */
  async messages(user: string, folder = "INBOX", from = source(200)): Promise<ImapMessage[]> {
    const r = await this.imap({ user, pass: this.password(user), source: from, actions: [{ list: folder }] });
    if (r.error) throw new Error(`IMAP login of ${user} failed: ${r.error} ${r.response ?? ""}`);
    const list = r.results?.[0];
    if (!Array.isArray(list)) throw new Error(`IMAP list of ${user}/${folder} failed: ${JSON.stringify(list)}`);
    return list as ImapMessage[];
  }

  /** Maildir files of a mailbox folder (new/ and cur/: IMAP moves mail from one to the other). */
  maildirCount(address: string, folder = ""): number {
    const [local, domain] = address.split("@");
    const dir = join(this.paths.vmail, domain, local, "Maildir", folder ? `.${folder}` : "");
    return ["new", "cur"].reduce((n, sub) => n + (existsSync(join(dir, sub)) ? readdirSync(join(dir, sub)).length : 0), 0);
  }

  /** The plain password of a mailbox, from the input config. */
  password(address: string): string {
    const m = this.config.mailboxes.find((b) => b.address === address);
    if (!m) throw new Error(`no mailbox ${address}`);
    const given = this.input.mailboxes[m.index];
    if (typeof given.password !== "string") throw new Error(`${address} has no plain password in the test config`);
    return given.password;
  }

  postfix(...args: string[]): RunResult {
    return this.exec("postfix", ["-c", this.paths.postfixConfig, ...args]);
  }

  /** Messages in Postfix's queue (postqueue -j), by queue id. */
  queue(): { queue_id: string; queue_name: string; recipients: { address: string; delay_reason?: string }[] }[] {
    const r = runOk("postqueue", ["-c", this.paths.postfixConfig, "-j"]);
    return r.stdout
      .split("\n")
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l));
  }

  flushQueue(): void {
    runOk("postqueue", ["-c", this.paths.postfixConfig, "-f"]);
  }

  doveadm(...args: string[]): RunResult {
    return this.exec("doveadm", ["-c", this.dovecotConfig, ...args]);
  }

  get dovecotConfig(): string {
    return join(this.root, "dovecot-test.conf");
  }

  log(name: "mail" | "dovecot" | "rspamd" | "unbound" | "redis" | "nginx"): string {
    const file = { mail: "mail.log", dovecot: "dovecot.log", rspamd: "rspamd/rspamd.log", unbound: "unbound.log", redis: "redis/redis.log", nginx: "nginx/error.log" }[name];
    try {
      return readFileSync(join(this.root, "var/log", file), "utf8");
    } catch {
      return "";
    }
  }

  logs(): string {
    // rspamd logs every controller request from loopback; tests poll its statistics.
    const noise = /rspamd_controller_check_password|rspamd_log_reset_repeated|hs_helper|skip obtaining bayes tokens/;
    return (["mail", "dovecot", "rspamd", "unbound", "nginx"] as const)
      .map((n) => `--- ${n} log (tail) ---\n${this.log(n).split("\n").filter((l) => !noise.test(l)).slice(-40).join("\n")}`)
      .join("\n");
  }

  /**
   * Makes `client` pass postscreen on port 25: a new client's first session goes through
   * postscreen's greeting and bare-newline tests and is told 450 4.3.2 at RCPT; once it is
   * logged as PASS NEW, its next session reaches smtpd. Fails unless both happened.
   */
  async passPostscreen(client: string, ehlo: string): Promise<{ first: SmtpSession; second: SmtpSession }> {
    const first = await this.smtp({ port: 25, source: client, steps: [ehlo, `MAIL FROM:<probe@${OUTSIDE_DOMAIN}>`, `RCPT TO:<${this.config.postmaster}>`, "QUIT"] });
    await this.until(`postscreen to pass ${client}`, () => new RegExp(`postscreen\\[\\d+\\]: PASS NEW \\[${escapeRegExp(client)}\\]:`).test(this.log("mail")));
    const second = await this.smtp({ port: 25, source: client, steps: [ehlo, "QUIT"] });
    await this.until(`smtpd to take ${client}'s second session`, () => new RegExp(`postfix/smtpd\\[\\d+\\]: connect from [^\\s[]+\\[${escapeRegExp(client)}\\]`).test(this.log("mail")));
    return { first, second };
  }

  /**
   * One session on port 25 from the outside domain's server (OUTSIDE_IP, postscreen passed
   * first, once per stack): MAIL FROM someone there, RCPT TO each of `to`, then DATA when given.
   * Every reply from MAIL FROM on.
   */
  async inbound(to: string[], data?: string): Promise<string[]> {
    if (!this.outsidePassed) {
      await this.passPostscreen(OUTSIDE_IP, "EHLO mx.outside.example");
      this.outsidePassed = true;
    }
    const steps = ["EHLO mx.outside.example", `MAIL FROM:<someone@${OUTSIDE_DOMAIN}>`, ...to.map((t) => `RCPT TO:<${t}>`), ...(data ? [{ data }] : []), "QUIT"];
    const s = await this.smtp({ port: 25, source: OUTSIDE_IP, steps });
    return s.replies.slice(1).map((r) => r.reply);
  }

  /** Waits until `check` holds, polling; throws with `what` and the logs after `timeoutMs`. */
  async until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await check()) return;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${this.logs()}`);
      await sleep(250);
    }
  }

  private async boot(options: StackOptions): Promise<void> {
    const p = this.paths;
    const env = this.host.env;
    runOk("ip", ["netns", "add", this.ns]);
    this.daemons.push({ name: "netns", stop: async () => void run("ip", ["netns", "delete", this.ns]) });
    runOk("ip", ["-n", this.ns, "link", "set", "lo", "up"]);
    runOk("ip", ["-n", this.ns, "addr", "add", `${HOST_IP}/32`, "dev", "lo"]);
    runOk("ip", ["-n", this.ns, "addr", "add", `${source(1)}/24`, "dev", "lo"]);
    // `ip netns exec` mounts this over /etc/resolv.conf for everything started in the namespace.
    mkdirSync(`/etc/netns/${this.ns}`, { recursive: true });
    writeFileSync(`/etc/netns/${this.ns}/resolv.conf`, `nameserver ${env.resolver}\n`);
    this.daemons.push({ name: "netns-etc", stop: async () => rmSync(`/etc/netns/${this.ns}`, { recursive: true, force: true }) });

    const logDir = join(this.root, "var/log");
    mkdirSync(logDir, { recursive: true });
    installRuntimeFiles(this.host, this.input, this.config, {
      dkimPrivateKeyPem: this.dkimPrivateKey,
      tlsPrivateKeyPem: readFileSync(this.host.env.paths.tlsKey, "utf8"),
    });
    // The bootstrap's vmail user: Dovecot names it as the owner of the learning sockets.
    if (run("getent", ["passwd", "vmail"]).status !== 0) {
      if (run("getent", ["group", "vmail"]).status !== 0) runOk("groupadd", ["--system", "--gid", String(env.vmail.gid), "vmail"]);
      runOk("useradd", ["--system", "--uid", String(env.vmail.uid), "--gid", "vmail", "--no-create-home", "--shell", "/usr/sbin/nologin", "vmail"]);
    }
    mkdirSync(p.vmail, { recursive: true });
    chownSync(p.vmail, env.vmail.uid, env.vmail.gid);
    chmodSync(p.vmail, 0o750);

    await this.startUnbound(options.extraRecords ?? []);
    if (this.variant === "full") {
      await this.startRedis();
      await this.startRspamd();
    }
    // Only a configuration that forwards has Postfix use PostSRSd (its main.cf says so).
    if (this.config.allowExternalForwarding) await this.startPostsrsd();
    this.preparePostfix(options);
    await this.startDovecot();
    await this.startPostfix();
    await this.startNginx();
  }

  /** nginx's main configuration file (see nginxMainConf), for `nginx -c` and reloads. */
  get nginxConfig(): string {
    return this.host.path("/etc/nginx/nginx-test.conf");
  }

  private async startNginx(): Promise<void> {
    nginxMainConf(this.host);
    runOk("ip", ["netns", "exec", this.ns, "nginx", "-c", this.nginxConfig], { stdio: ["ignore", "ignore", "pipe"] });
    this.daemons.push({ name: "nginx", stop: () => this.killPidFile(join(this.root, "run/nginx.pid")) });
    await this.until("nginx to listen", () => this.portOpen(443));
  }

  /** unbound with the rendered settings, answering from the stack's records and nothing else. */
  private async startUnbound(extraRecords: ExtraRecord[]): Promise<void> {
    const dir = this.host.path("/etc/unbound");
    const rr = (r: ExtraRecord) => {
      const data = r.type === "MX" ? `${r.priority ?? 10} ${r.content}.` : r.content;
      return `  local-data: '${r.name}. ${r.ttl ?? 300} IN ${r.type} ${data}'`;
    };
    writeFileSync(
      join(dir, "unbound-test.conf"),
      [
        "server:",
        `  directory: "${dir}"`,
        '  username: ""',
        '  chroot: ""',
        `  pidfile: "${this.root}/run/unbound.pid"`,
        "  use-syslog: no",
        `  logfile: "${this.root}/var/log/unbound.log"`,
        `include: "${dir}/unbound.conf.d/mailstack.conf"`,
        "server:",
        // Nothing is looked up outside the namespace: names not listed here do not exist.
        '  local-zone: "." static',
        ...this.records.map(rr),
        ...extraRecords.map(rr),
        `  local-data: '${OUTSIDE_DOMAIN}. 3600 IN MX 10 mx.${OUTSIDE_DOMAIN}.'`,
        `  local-data: 'mx.${OUTSIDE_DOMAIN}. 3600 IN A ${OUTSIDE_IP}'`,
        `  local-data: '${OUTSIDE_DOMAIN}. 3600 IN TXT "v=spf1 ip4:${OUTSIDE_IP} -all"'`,
        `  local-data: '_dmarc.${OUTSIDE_DOMAIN}. 3600 IN TXT "v=DMARC1; p=reject"'`,
        `  local-data: '${LISTED_IP.split(".").reverse().join(".")}.zen.spamhaus.org. 300 IN A 127.0.0.2'`,
        `  local-data: '${NO_DMARC_DOMAIN}. 3600 IN MX 10 mx.${OUTSIDE_DOMAIN}.'`,
        `  local-data: '${NO_DMARC_DOMAIN}. 3600 IN TXT "v=spf1 -all"'`,
        `  local-data-ptr: '${OUTSIDE_IP} mx.${OUTSIDE_DOMAIN}.'`,
        `  local-data-ptr: '${HOST_IP} ${this.config.hostname}.'`,
        "",
      ].join("\n"),
    );
    mkdirSync(join(this.root, "run"), { recursive: true });
    runOk("ip", ["netns", "exec", this.ns, "unbound", "-c", join(dir, "unbound-test.conf")], { stdio: ["ignore", "ignore", "pipe"] });
    this.daemons.push({ name: "unbound", stop: () => this.killPidFile(join(this.root, "run/unbound.pid")) });
    await this.until("unbound to answer", () => this.exec("getent", ["hosts", this.config.hostname]).stdout.includes(HOST_IP));
  }

  /**
   * What systemd does for a unit before its daemon starts: its RuntimeDirectory (as Debian's
   * unit sets it), then the rendered drop-in's ExecStartPre commands, which make the socket
   * directories. The daemon then runs as the unit's user, with no other group.
   */
  private startUnit(unit: string, runtimeDirectory: { path: string; owner: string; mode: number }): void {
    mkdirSync(runtimeDirectory.path, { recursive: true });
    runOk("chown", [runtimeDirectory.owner, runtimeDirectory.path]);
    chmodSync(runtimeDirectory.path, runtimeDirectory.mode);
    const dropIn = unitSections(readFileSync(this.host.path(`/etc/systemd/system/${unit}.d/mailstack.conf`), "utf8"));
    for (const command of dropIn.Service?.ExecStartPre ?? []) {
      const [program, ...args] = command.replace(/^\+/, "").split(" ");
      runOk(program, args);
    }
  }

  private async startRedis(): Promise<void> {
    const dir = join(this.root, "var/lib/redis");
    const logDir = join(this.root, "var/log/redis");
    for (const d of [dir, logDir]) {
      mkdirSync(d, { recursive: true });
      runOk("chown", ["redis:redis", d]);
    }
    const runDir = join(this.root, "run/redis");
    this.startUnit("redis-server.service", { path: runDir, owner: "redis:redis", mode: 0o2755 });
    const pid = join(runDir, "redis.pid");
    const daemon = ["--daemonize", "yes", "--dir", dir, "--pidfile", pid, "--logfile", join(logDir, "redis.log"), "--save", ""];
    runOk("ip", ["netns", "exec", this.ns, "setpriv", "--reuid=redis", "--regid=redis", "--init-groups", "redis-server", ...redisListenArgs(this.host.env), ...daemon], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    this.daemons.push({ name: "redis", stop: () => this.killPidFile(pid) });
    await this.until("redis to answer", () => this.exec("redis-cli", ["-s", this.paths.redisSocket, "ping"]).stdout.includes("PONG"));
  }

  /** rspamd with Debian's stock configuration plus the rendered local.d, as on the host. */
  private async startRspamd(): Promise<void> {
    const vars = rspamdVars(this.root, this.host.path("/etc/rspamd"));
    for (const dir of [vars.DBDIR, vars.LOGDIR]) {
      mkdirSync(dir, { recursive: true });
      run("chown", ["_rspamd:_rspamd", dir]);
    }
    this.startUnit("rspamd.service", { path: vars.RUNDIR, owner: "_rspamd:_rspamd", mode: 0o755 });
    mkdirSync(join(vars.LOCAL_CONFDIR, "override.d"), { recursive: true });
    writeFileSync(join(vars.LOCAL_CONFDIR, "override.d/options.inc"), "enable_test_patterns = true;\n");
    // The host logs to the journal (syslog); the stack has none, so its file, as for every daemon.
    writeFileSync(join(vars.LOCAL_CONFDIR, "override.d/logging.inc"), `type = "file";\nfilename = "${vars.LOGDIR}/rspamd.log";\n`);
    const args = ["-c", "/etc/rspamd/rspamd.conf", ...Object.entries(vars).map(([k, v]) => `--var=${k}=${v}`)];
    // As Debian's unit runs it: User=_rspamd from the start, never root.
    runOk("ip", ["netns", "exec", this.ns, "setpriv", "--reuid=_rspamd", "--regid=_rspamd", "--init-groups", "rspamd", ...args], { stdio: ["ignore", "ignore", "ignore"] });
    this.daemons.push({ name: "rspamd", stop: () => this.killPidFile(join(vars.RUNDIR, "rspamd.pid")) });
    // A cold start compiles the regular expressions before the milter socket appears.
    await this.until("rspamd's milter socket", () => existsSync(this.paths.rspamdMilterSocket), 90000);
    await this.until("rspamd's controller", () => this.exec("rspamc", ["-h", this.paths.rspamdControllerSocket, "stat"]).status === 0, 30000);
  }

  private preparePostfix(options: StackOptions): void {
    const p = this.paths;
    mkdirSync(p.postfixQueue, { recursive: true });
    mkdirSync(p.postfixData, { recursive: true });
    run("chown", ["postfix:postfix", p.postfixData]);
    const overrides: Record<string, string> = {
      // No syslog here: Postfix's own logger writes the lines syslog would get.
      maillog_file: join(this.root, "var/log/mail.log"),
      maillog_file_prefixes: join(this.root, "var/log"),
      ...(this.variant === "full" ? {} : { smtpd_milters: "", non_smtpd_milters: "" }),
      ...(this.variant === "discard" ? { virtual_transport: "discard:" } : {}),
      ...options.postfixOverrides,
    };
    runOk("postconf", ["-c", p.postfixConfig, "-e", ...Object.entries(overrides).map(([k, v]) => `${k}=${v}`)]);
    // Creates the queue's subdirectories with their owners, as the package's postinst does.
    runOk("postfix", ["-c", p.postfixConfig, "set-permissions"], { stdio: ["ignore", "pipe", "pipe"] });
    runOk("postfix", ["-c", p.postfixConfig, "check"]);
  }

  private async startPostfix(): Promise<void> {
    const r = this.postfix("start");
    if (r.status !== 0) throw new Error(`postfix start failed: ${r.stdout}${r.stderr}`);
    this.daemons.push({
      name: "postfix",
      stop: async () => {
        this.postfix("stop");
        await this.until("Postfix to stop", () => this.postfix("status").status !== 0, 20000).catch(() => undefined);
      },
    });
    await this.until("Postfix to listen", () => this.portOpen(this.host.env.ports.submission));
  }

  /**
   * PostSRSd as its unit runs it on the host: the package's own launcher (the unit's
   * ExecStart), which sources the rendered settings file, bound here over the package's
   * /etc/default/postsrsd in a mount namespace of the daemon's own, with a secret of the
   * stack's over the one the package generated. It listens on the namespace's loopback.
   */
  private async startPostsrsd(): Promise<void> {
    requireTools("postsrsd");
    const secret = join(this.root, "etc/postsrsd.secret");
    // As the package's postinst makes it.
    writeFileSync(secret, randomBytes(24).toString("base64"), { mode: 0o600 });
    const pid = join(this.root, "run/postsrsd.pid");
    const script = [
      `echo $$ > ${pid}`,
      `exec 2>>${join(this.root, "var/log/postsrsd.log")}`,
      `mount --bind ${this.host.path(POSTSRSD.settings)} ${POSTSRSD.settings}`,
      `mount --bind ${secret} ${POSTSRSD.secret}`,
      "exec /usr/share/postsrsd/postsrsd-systemd-launcher",
    ].join(" && ");
    runOk("ip", ["netns", "exec", this.ns, "setsid", "-f", "unshare", "--mount", "--propagation", "private", "sh", "-c", script], { stdio: "ignore" });
    this.daemons.push({ name: "postsrsd", stop: () => this.killPidFile(pid) });
    await this.until("PostSRSd's tables", () => this.portOpen(POSTSRSD.forwardPort) && this.portOpen(POSTSRSD.reversePort));
  }

  /** Starts Dovecot (again, after stopDovecot). */
  async startDovecot(): Promise<void> {
    if (!existsSync(this.dovecotConfig)) {
      mkdirSync(join(this.root, "var/lib/dovecot"), { recursive: true });
      writeFileSync(
        this.dovecotConfig,
        [
          `!include ${this.host.path("/etc/dovecot/dovecot.conf")}`,
          `state_dir = ${this.root}/var/lib/dovecot`,
          `instance_name = ${this.ns}`,
          `log_path = ${this.root}/var/log/dovecot.log`,
          "",
        ].join("\n"),
      );
      // The host's bootstrap compiles the global Sieve scripts; Dovecot cannot write there.
      runOk("sievec", ["-c", this.dovecotConfig, this.host.path("/etc/dovecot/sieve")]);
      this.daemons.push({ name: "dovecot", stop: () => this.stopDovecot() });
    }
    // Dovecot keeps its stdio open after daemonizing: never pipe it.
    runOk("ip", ["netns", "exec", this.ns, "dovecot", "-c", this.dovecotConfig], { stdio: ["ignore", "ignore", "ignore"] });
    this.dovecotRunning = true;
    await this.until("Dovecot's LMTP socket and IMAPS port", () => existsSync(join(this.paths.postfixQueue, "private/dovecot-lmtp")) && this.portOpen(this.host.env.ports.imaps));
  }

  async stopDovecot(): Promise<void> {
    if (!this.dovecotRunning) return;
    await this.killPidFile(join(this.paths.dovecotBase, "master.pid"));
    this.dovecotRunning = false;
  }

  private portOpen(port: number): boolean {
    return this.exec("bash", ["-c", `exec 3<>/dev/tcp/127.0.0.1/${port}`]).status === 0;
  }

  private async killPidFile(file: string): Promise<void> {
    let pid: string;
    try {
      pid = readFileSync(file, "utf8").trim();
    } catch {
      return;
    }
    if (!/^\d+$/.test(pid)) return;
    run("kill", [pid]);
    const deadline = Date.now() + 15000;
    while (run("kill", ["-0", pid]).status === 0) {
      if (Date.now() > deadline) {
        run("kill", ["-9", pid]);
        break;
      }
      await sleep(100);
    }
  }

  /** Stops every daemon, removes the namespace and the temporary root. */
  async stop(): Promise<void> {
    for (const d of [...this.daemons].reverse()) {
      if (d.name === "netns") {
        // Anything left in the namespace (a client, a daemon's child) goes with it.
        const pids = run("ip", ["netns", "pids", this.ns]).stdout.split("\n").filter(Boolean);
        if (pids.length) run("kill", ["-9", ...pids]);
      }
      await d.stop().catch(() => undefined);
    }
    this.daemons.length = 0;
    if (!process.env.MAILSTACK_KEEP_STACK) this.host.cleanup();
  }
}

/** rspamd's directory variables for a stack below `root`, with local.d under `localConfDir`. */
function rspamdVars(root: string, localConfDir: string): Record<string, string> {
  return {
    LOCAL_CONFDIR: localConfDir,
    DBDIR: join(root, "var/lib/rspamd"),
    RUNDIR: join(root, "run/rspamd"),
    LOGDIR: join(root, "var/log/rspamd"),
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The lines of a message's header named `name` (any case), each unfolded to one line. */
export const header = (source: string, name: string): string[] =>
  source
    .split(/\r?\n\r?\n/)[0]
    .replace(/\r?\n[ \t]+/g, " ")
    .split(/\r?\n/)
    .filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));

/**
 * A message with a unique Message-ID, and a unique reference line ending the body: rspamd's
 * greylisting remembers bodies, so two tests sending the same text would meet each other.
 */
export function message(from: string, to: string, subject: string, body = "Hello from the mailstack tests.\n", extraHeaders: string[] = []): string {
  const id = `${randomBytes(8).toString("hex")}@mailstack.test`;
  return [
    `From: ${from}`,
    `To: ${to}`,
    `Subject: ${subject}`,
    `Message-ID: <${id}>`,
    `Date: ${new Date().toUTCString().replace("GMT", "+0000")}`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    ...extraHeaders,
    "",
    body,
    `Reference: ${id}`,
    "",
  ].join("\n");
}
