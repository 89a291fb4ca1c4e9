/**
 * Issue test 8: fail2ban, run with the rendered jails against the daemons' real log lines,
 * bans a source after the configured failures and not before.
 *
 * fail2ban-server runs inside the stack's network namespace, with Debian's own /etc/fail2ban
 * plus the rendered jail.d/mailstack.local unchanged, and one test-only file overriding only
 * what cannot work without systemd's journal. Every failure it counts is a real one: a failed
 * AUTH on 587 (Postfix asking Dovecot) or a failed IMAP login on 993, from an "internet"
 * source. Dovecot delays answers to an address after a failure (2 s, then more), but those
 * delays are timers, not a queue: failures sent in parallel from one address all finish within
 * a few seconds, so nothing is replayed or made up. The bans are real nftables rules in the
 * namespace, and the test proves them by connecting.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, cpSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hostFiles, parseConfig, PRODUCTION_ENV } from "@mailstack/core";
import { fullConfig } from "../support/fixtures";
import { sleep, source, TestStack } from "../support/stack";
import { requireRoot, requireTools, run, runOk, TEST_PARAMS, tempRoot, TOOL_PATH } from "../support/tools";

const JAIL_FILE = "/etc/fail2ban/jail.d/mailstack.local";
/** The mail ports the rendered mail jails ban (fullConfig has POP3). */
const MAIL_PORTS = [25, 587, 465, 993, 995];
const ALICE = "alice@example.com";
/**
 * The same wrong password every time, as a phone with an old password sends it; Dovecot's
 * penalty does not grow for a password it has already seen failing from the address.
 */
const WRONG = "not alice's password";

/** `fail2ban-client -d`: the commands the client would send the server, one Python list a line. */
function dump(configDir: string): string[] {
  return runOk("fail2ban-client", ["-c", configDir, "-d"]).stdout.split("\n");
}

/** The values of one jail's `set JAIL key ...` lines in a dump (those lines hold plain strings). */
function dumped(lines: string[], jail: string, key: string): unknown[][] {
  const prefix = `['set', '${jail}', '${key}', `;
  return lines.filter((l) => l.startsWith(prefix)).map((l) => (JSON.parse(l.replace(/'/g, '"')) as unknown[]).slice(3));
}

describe("the rendered jails with Debian's stock fail2ban configuration, as the host loads them", () => {
  requireTools("fail2ban-client");
  let dir: string;
  let lines: string[];
  beforeAll(() => {
    dir = tempRoot("f2b");
    cpSync("/etc/fail2ban", dir, { recursive: true });
    const jails = hostFiles(parseConfig(fullConfig()), TEST_PARAMS, PRODUCTION_ENV).find((f) => f.path === JAIL_FILE);
    if (!jails) throw new Error(`no rendered ${JAIL_FILE}`);
    writeFileSync(join(dir, "jail.d/mailstack.local"), jails.content);
    lines = dump(dir);
  });
  afterAll(() => dir && rmSync(dir, { recursive: true, force: true }));

  test("the mail jails read the journal with the rendered limits; recidive reads fail2ban's log file", () => {
    const added = (jail: string) => lines.find((l) => l.startsWith(`['add', '${jail}', `));
    for (const jail of ["postfix-sasl", "dovecot", "sshd"]) expect(added(jail)).toBe(`['add', '${jail}', 'systemd']`);
    expect(added("recidive")).toBe("['add', 'recidive', 'auto']");
    for (const jail of ["postfix-sasl", "dovecot"]) {
      expect(dumped(lines, jail, "maxretry")).toEqual([[20]]);
      expect(dumped(lines, jail, "findtime")).toEqual([["30m"]]);
      expect(dumped(lines, jail, "addignoreip")).toEqual([["127.0.0.1/8", "::1"]]);
    }
    // recidive counts the "Ban" lines fail2ban writes to its logtarget: the same file.
    const logtarget = lines.find((l) => l.startsWith("['set', 'logtarget', "));
    expect(logtarget).toBe("['set', 'logtarget', '/var/log/fail2ban.log']");
    expect(dumped(lines, "recidive", "addlogpath")).toEqual([["/var/log/fail2ban.log", "head"]]);
  });

  test("each mail jail's journal match covers the systemd unit its daemon runs in", () => {
    // Debian's and Ubuntu's Dovecot runs in dovecot.service. Their Postfix runs in the
    // instance unit postfix@-.service (postfix.service only runs /bin/true), and journald
    // files each syslog line under the sender's unit: fail2ban 1.0.2's stock postfix filter
    // matches postfix.service only (upstream added postfix@-.service in 1.1.0, PR #3692), so
    // without more the postfix-sasl jail would read nothing on the host.
    const units = (jail: string) => dumped(lines, jail, "addjournalmatch").flat();
    expect(units("dovecot")).toContain("_SYSTEMD_UNIT=dovecot.service");
    expect(units("postfix-sasl")).toContain("_SYSTEMD_UNIT=postfix@-.service");
  });
});

describe("fail2ban with the rendered jails against the real daemons", () => {
  requireRoot("fail2ban's nftables action loads rules into the stack's network namespace");
  requireTools("fail2ban-client", "fail2ban-server", "fail2ban-regex", "nft", "ip");
  let stack: TestStack;
  let server: ChildProcess | undefined;
  let dir: string;
  const logFile = (name: string) => join(stack.root, "var/log", name);

  const attacker = { smtp: source(30), imap: source(31) };
  /** Logs in successfully, then fails once (a marker, see the test). */
  const user = source(32);
  const marker = source(33);
  /** Never fails: must still connect while the others are banned. */
  const bystander = source(40);

  beforeAll(async () => {
    // Nothing here goes through rspamd: the stack without the milter boots in seconds.
    stack = await TestStack.start(fullConfig(), { variant: "unfiltered" });
    // The host's /etc/fail2ban: Debian's package, and the rendered jail file next to it (the
    // stack has already rendered it there; cpSync does not overwrite it).
    dir = stack.host.path("/etc/fail2ban");
    cpSync("/etc/fail2ban", dir, { recursive: true, force: false });
    expect(readFileSync(join(dir, "jail.d/mailstack.local"), "utf8")).toBe(stack.host.file(JAIL_FILE).content);
    // Debian's postinst creates the log file; a jail with a missing logpath fails to start.
    writeFileSync(logFile("fail2ban.log"), "");
    // sshd's log: there is no SSH in the stack, and no auth.log without journald; the jail
    // stays on, reading an empty file, so that the whole rendered set of jails starts.
    writeFileSync(logFile("auth.log"), "");
    writeFileSync(
      join(dir, "jail.d/zz-test.local"),
      [
        "# Test only. Read after mailstack.local, and overrides only what needs the journal.",
        "[DEFAULT]",
        "# The host reads the journal (backend = systemd, with python3-systemd); there is no",
        "# journald here, and the stack's daemons log to files instead.",
        "backend = polling",
        "",
        "[postfix-sasl]",
        "# Postfix logs through postlogd (maillog_file) here, through syslog to the journal on the host.",
        `logpath = ${logFile("mail.log")}`,
        "",
        "[dovecot]",
        "# Dovecot's log_path here, syslog to the journal on the host.",
        `logpath = ${logFile("dovecot.log")}`,
        "",
        "[sshd]",
        `logpath = ${logFile("auth.log")}`,
        "",
        "[recidive]",
        "# fail2ban's own log, moved with logtarget below.",
        `logpath = ${logFile("fail2ban.log")}`,
        "",
      ].join("\n"),
    );
    writeFileSync(
      join(dir, "fail2ban.d/zz-test.local"),
      [
        "# Test only: nothing of the machine's own fail2ban (log, socket, pid file, ban database) is touched.",
        "[DEFAULT]",
        `logtarget = ${logFile("fail2ban.log")}`,
        `socket = ${stack.root}/run/fail2ban.sock`,
        `pidfile = ${stack.root}/run/fail2ban.pid`,
        "# The host keeps bans across restarts in /var/lib/fail2ban; a test run starts from none.",
        "dbfile = :memory:",
        "",
      ].join("\n"),
    );
    mkdirSync(join(stack.root, "run"), { recursive: true });
    // As fail2ban.service starts it, in the foreground; inside the namespace, so that its nft
    // commands act on the namespace's firewall. Its stdio goes to a file: never a pipe.
    const out = openSync(logFile("fail2ban.out"), "a");
    server = spawn("ip", ["netns", "exec", stack.ns, "fail2ban-server", "-c", dir, "-xf", "start"], {
      stdio: ["ignore", out, out],
      env: { ...process.env, PATH: TOOL_PATH },
    });
    closeSync(out);
    await waitFor("fail2ban's jails", () => client("status").includes("postfix-sasl, recidive"), 30000);
  }, 180000);

  afterAll(async () => {
    if (server && server.exitCode === null) {
      run("fail2ban-client", ["-c", dir, "stop"]);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise((r) => server?.once("exit", r)), new Promise((r) => (timer = setTimeout(r, 10000)))]);
      clearTimeout(timer);
      if (server.exitCode === null && server.pid) process.kill(server.pid, "SIGKILL");
    }
    await stack?.stop();
  });

  function client(...args: string[]): string {
    return run("fail2ban-client", ["-c", dir, ...args]).stdout;
  }

  function jail(name: string): { currentlyFailed: number; totalFailed: number; banned: string[] } {
    const out = client("status", name);
    const num = (label: string) => {
      const m = out.match(new RegExp(`${label}:\\s*(\\d+)`));
      if (!m) throw new Error(`no "${label}" in fail2ban's status of ${name}:\n${out}`);
      return Number(m[1]);
    };
    const list = out.match(/Banned IP list:[ \t]*(.*)/);
    if (!list) throw new Error(`no banned list in fail2ban's status of ${name}:\n${out}`);
    return { currentlyFailed: num("Currently failed"), totalFailed: num("Total failed"), banned: list[1].split(/\s+/).filter(Boolean) };
  }

  async function waitFor(what: string, check: () => boolean, timeoutMs = 20000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) {
        const f2bLog = (() => {
          try {
            return `${readFileSync(logFile("fail2ban.out"), "utf8")}\n${readFileSync(logFile("fail2ban.log"), "utf8").split("\n").slice(-40).join("\n")}`;
          } catch {
            return "";
          }
        })();
        throw new Error(`timed out waiting for ${what}\n--- fail2ban ---\n${f2bLog}\n${stack.logs()}`);
      }
      await sleep(250);
    }
  }

  const count = (text: string, needle: string) => text.split("\n").filter((l) => l.includes(needle)).length;
  const saslFailed = (ip: string) => `warning: unknown[${ip}]: SASL PLAIN authentication failed`;
  /** Dovecot's line for a connection that failed one login, from `ip`. */
  const imapFailures = (ip: string) =>
    stack
      .log("dovecot")
      .split("\n")
      .filter((l) => l.includes("(auth failed, 1 attempts in") && l.includes(`rip=${ip},`)).length;

  /** `n` failed AUTH PLAIN on 587 from `ip`, in parallel; each must be refused as a failure. */
  async function failSmtp(ip: string, n: number): Promise<void> {
    const bad = Buffer.from(`\0${ALICE}\0${WRONG}`).toString("base64");
    const sessions = await Promise.all(
      Array.from({ length: n }, () =>
        stack.smtp({ port: 587, source: ip, steps: ["EHLO client.outside.example", { starttls: true }, "EHLO client.outside.example", `AUTH PLAIN ${bad}`, "QUIT"], timeoutMs: 40000 }),
      ),
    );
    for (const s of sessions) expect(s.replies.find((r) => r.sent.startsWith("AUTH"))?.reply).toMatch(/^535 /);
  }

  /** `n` failed IMAP logins on 993 from `ip`, in parallel (imapflow: one attempt a connection). */
  async function failImap(ip: string, n: number): Promise<void> {
    const results = await Promise.all(Array.from({ length: n }, () => stack.imap({ user: ALICE, pass: WRONG, source: ip, actions: [] })));
    for (const r of results) expect(r.error).toBe("authentication failed");
  }

  /** TCP connections from `ip` to each port, inside the namespace: "connected" or the error code. */
  function connections(ip: string, ports: number[]): Record<number, string> {
    const script = `const net = require("node:net");
const one = (port) => new Promise((done) => {
  const s = net.connect({ host: "127.0.0.1", port, localAddress: ${JSON.stringify(ip)} });
  s.setTimeout(3000, () => { s.destroy(); done("TIMEOUT"); });
  s.on("connect", () => { s.destroy(); done("connected"); });
  s.on("error", (e) => done(e.code));
});
const ports = ${JSON.stringify(ports)};
Promise.all(ports.map(one)).then((r) => console.log(JSON.stringify(Object.fromEntries(ports.map((p, i) => [p, r[i]])))));`;
    const r = stack.exec(process.execPath, ["-e", script]);
    if (r.status !== 0) throw new Error(`connection check failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<number, string>;
  }

  function nftSet(name: string): string {
    return stack.exec("nft", ["list", "set", "inet", "f2b-table", `addr-set-${name}`]).stdout;
  }

  test("the jails run with the rendered limits and read the daemons' log files", () => {
    for (const name of ["postfix-sasl", "dovecot"]) {
      expect(client("get", name, "maxretry").trim()).toBe("20");
      expect(client("get", name, "findtime").trim()).toBe("1800");
      expect(client("get", name, "bantime").trim()).toBe("3600");
      expect(client("get", name, "ignoreip")).toContain("127.0.0.0/8");
      expect(client("get", name, "actions")).toContain("nftables");
      expect(jail(name)).toEqual({ currentlyFailed: 0, totalFailed: 0, banned: [] });
    }
    expect(client("get", "postfix-sasl", "logpath")).toContain(logFile("mail.log"));
    expect(client("get", "dovecot", "logpath")).toContain(logFile("dovecot.log"));
  });

  test("a successful login is not a failure", async () => {
    const good = Buffer.from(`\0${ALICE}\0${stack.password(ALICE)}`).toString("base64");
    const s = await stack.smtp({ port: 587, source: user, steps: ["EHLO client.outside.example", { starttls: true }, "EHLO client.outside.example", `AUTH PLAIN ${good}`, "QUIT"] });
    expect(s.replies.find((r) => r.sent.startsWith("AUTH"))?.reply).toMatch(/^235 /);
    const imap = await stack.imap({ user: ALICE, pass: stack.password(ALICE), source: user, actions: [{ status: "INBOX" }] });
    expect(imap.error).toBeUndefined();
    expect(stack.log("dovecot")).toContain(`Login: user=<${ALICE}>, method=PLAIN, rip=${user},`);
    // fail2ban reads each file in order: once it has counted a failure logged after the
    // logins, it has read the logins too. Exactly one failure each, and it is the marker's.
    await Promise.all([failSmtp(marker, 1), failImap(marker, 1)]);
    await waitFor("the marker failures to be counted", () => jail("postfix-sasl").totalFailed >= 1 && jail("dovecot").totalFailed >= 1);
    await sleep(1500);
    expect(jail("postfix-sasl")).toEqual({ currentlyFailed: 1, totalFailed: 1, banned: [] });
    expect(jail("dovecot")).toEqual({ currentlyFailed: 1, totalFailed: 1, banned: [] });
    const found = readFileSync(logFile("fail2ban.log"), "utf8").split("\n").filter((l) => l.includes("] Found "));
    expect(found.map((l) => l.replace(/^.*\[(\S+)\] Found (\S+) .*$/, "$1 $2")).sort()).toEqual([`dovecot ${marker}`, `postfix-sasl ${marker}`]);
  });

  /** The two attacks, one per jail, each from its own source; they run side by side. */
  const attacks = [
    { name: "postfix-sasl", ip: attacker.smtp, fail: failSmtp, logged: () => count(stack.log("mail"), saslFailed(attacker.smtp)) },
    { name: "dovecot", ip: attacker.imap, fail: failImap, logged: () => imapFailures(attacker.imap) },
  ];

  test("19 real failures from a source do not ban it", async () => {
    await Promise.all(
      attacks.map(async ({ name, ip, fail, logged }) => {
        const before = jail(name).totalFailed;
        await fail(ip, 19);
        await waitFor(`19 failures from ${ip} to be logged`, () => logged() === 19);
        await waitFor(`${name} to count 19 failures from ${ip}`, () => jail(name).totalFailed === before + 19);
      }),
    );
    // A ban follows the counting within a second; give it more.
    await sleep(2500);
    for (const { name, ip } of attacks) {
      expect(jail(name).banned).toEqual([]);
      expect(nftSet(name)).not.toContain(ip);
      expect(connections(ip, [587, 993])).toEqual({ 587: "connected", 993: "connected" });
    }
  });

  test("the 20th bans it, by the client's address", async () => {
    await Promise.all(attacks.map(({ ip, fail }) => fail(ip, 1)));
    for (const { name, ip, logged } of attacks) {
      await waitFor(`the 20th failure from ${ip} to be logged`, () => logged() === 20);
      await waitFor(`${name} to ban ${ip}`, () => jail(name).banned.length > 0);
      // The client's address: not loopback, not the address it connected to.
      expect(jail(name).banned).toEqual([ip]);
      // fail2ban lists the ban before its action has run; the nftables element follows.
      await waitFor(`the nftables set of ${name} to hold ${ip}`, () => nftSet(name).includes(ip));
      expect(readFileSync(logFile("fail2ban.log"), "utf8")).toContain(`NOTICE  [${name}] Ban ${ip}`);
    }
  });

  test("a ban refuses the source on every mail port, and only that source", () => {
    const refused = Object.fromEntries(MAIL_PORTS.map((p) => [p, "ECONNREFUSED"]));
    for (const { ip } of attacks) expect(connections(ip, MAIL_PORTS)).toEqual(refused);
    expect(connections(bystander, MAIL_PORTS)).toEqual(Object.fromEntries(MAIL_PORTS.map((p) => [p, "connected"])));
  });

  test("the stock filters match exactly the daemons' genuine failure lines", () => {
    // fail2ban-regex, offline, on the log files as the daemons wrote them: every failure line,
    // and nothing else (the successful logins, the boot's probes from 127.0.0.1), is matched.
    const matched = (log: string, filter: string) => {
      const out = runOk("fail2ban-regex", ["-c", dir, log, filter]).stdout;
      const m = out.match(/^Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed/m);
      if (!m) throw new Error(`no summary in fail2ban-regex's output:\n${out}`);
      return Number(m[3]);
    };
    const mail = stack.log("mail");
    const dovecot = stack.log("dovecot");
    expect(count(mail, "SASL PLAIN authentication failed")).toBe(21);
    expect(matched(logFile("mail.log"), "postfix[mode=auth]")).toBe(21);
    expect(count(dovecot, "(auth failed,")).toBe(21);
    expect(matched(logFile("dovecot.log"), "dovecot")).toBe(21);
  });

  test("recidive counts the bans from fail2ban's own log", async () => {
    await waitFor("recidive to count the two bans", () => jail("recidive").totalFailed === 2);
    expect(jail("recidive").banned).toEqual([]);
  });
});
