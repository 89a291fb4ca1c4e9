/**
 * TLS on the real stack's client ports (test/support/stack.ts): old protocol versions and
 * weak cipher suites are refused by the servers, modern ones accepted, and no password can
 * travel in plaintext (no plaintext IMAP/POP3 listener, AUTH only inside TLS on submission,
 * no AUTH at all on port 25).
 *
 * Protocol versions are tried with Debian's `openssl s_client`. Debian 12's OpenSSL refuses
 * TLS 1.0/1.1 by itself at its default security level, which would make a "refused" prove
 * nothing; every attempt here runs at SECLEVEL=0, its -trace shows the ClientHello's version,
 * and a control shows the same invocation completing TLS 1.0 and 1.1 with a local
 * `openssl s_server` that allows them.
 *
 * Cipher suites are offered with a hand-built TLS 1.2 ClientHello (PROBE below): Debian's
 * OpenSSL cannot even offer RC4, 3DES, DES or export suites, so s_client could not test
 * them. The probe reports the server's first answer (ServerHello, alert, or close); a control
 * shows it getting a ServerHello for an allowed suite from the stack and, for suites OpenSSL
 * still has, from a permissive local s_server.
 */
import { type ChildProcess, spawn } from "node:child_process";
import type { MailConfigInput } from "@mailstack/core";
import { fullConfig } from "../support/fixtures";
import { HOST_IP, OUTSIDE_DOMAIN, type SmtpSession, source, TestStack } from "../support/stack";
import { requireRoot, requireTools, TOOL_PATH } from "../support/tools";

const EHLO = `EHLO client.${OUTSIDE_DOMAIN}`;

/**
 * Runs in the stack's namespace (node -e PROBE JSON). Connects from `source` to `port`, does
 * EHLO/STARTTLS first if `starttls`, then either sends `plain` as it is and collects what
 * comes back, or sends a TLS 1.2 ClientHello offering exactly `suites` and reports the
 * server's answer: {result: "server-hello", version, cipher} | {result: "alert", level,
 * description} | {result: "closed" | "timeout" | "error", ...}.
 */
const PROBE = String.raw`
const net = require("node:net");
const { randomBytes } = require("node:crypto");
const a = JSON.parse(process.argv[process.argv.length - 1]);
const u16 = (n) => Buffer.from([n >> 8, n & 255]);
const u24 = (n) => Buffer.from([n >> 16, (n >> 8) & 255, n & 255]);
const vec16 = (b) => Buffer.concat([u16(b.length), b]);
const ext = (type, body) => Buffer.concat([u16(type), vec16(body)]);
function clientHello(suites) {
  const exts = Buffer.concat([
    ext(0x000a, vec16(Buffer.concat([0x001d, 0x0017, 0x0018].map(u16)))),
    ext(0x000b, Buffer.from([1, 0])),
    ext(0x000d, vec16(Buffer.concat([0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0203, 0x0201].map(u16)))),
    ext(0xff01, Buffer.from([0])),
  ]);
  const body = Buffer.concat([Buffer.from([3, 3]), randomBytes(32), Buffer.from([0]), vec16(Buffer.concat(suites.map(u16))), Buffer.from([1, 0]), vec16(exts)]);
  const hs = Buffer.concat([Buffer.from([1]), u24(body.length), body]);
  return Buffer.concat([Buffer.from([0x16, 3, 1]), vec16(hs)]);
}
const sock = net.connect({ host: a.host, port: a.port, localAddress: a.source });
let buf = Buffer.alloc(0);
let stage = "connect";
const done = (r) => { process.stdout.write(JSON.stringify(r)); sock.destroy(); process.exit(0); };
setTimeout(() => done({ result: "timeout", stage, received: buf.toString("latin1") }), a.timeoutMs || 10000);
sock.on("error", (e) => done({ result: "error", code: e.code, stage }));
sock.on("close", () => done({ result: "closed", stage, received: buf.toString("latin1") }));
function sendHello() { stage = "hello"; buf = Buffer.alloc(0); sock.write(clientHello(a.suites)); }
sock.on("connect", () => {
  if (a.starttls) stage = "banner";
  else if (a.plain !== undefined) { stage = "plain"; sock.write(a.plain); }
  else sendHello();
});
sock.on("data", (d) => {
  buf = Buffer.concat([buf, d]);
  if (stage === "plain") return;
  if (stage !== "hello") {
    const text = buf.toString("latin1");
    if (!/(^|\n)\d{3} [^\n]*\n$/.test(text)) return;
    buf = Buffer.alloc(0);
    if (stage === "banner") { stage = "ehlo"; sock.write("EHLO probe.outside.example\r\n"); }
    else if (stage === "ehlo") { stage = "starttls"; sock.write("STARTTLS\r\n"); }
    else if (stage === "starttls") { if (text.startsWith("220")) sendHello(); else done({ result: "no-starttls", reply: text }); }
    return;
  }
  if (buf.length < 5) return;
  if (buf[0] === 0x15 && buf.length >= 7) return done({ result: "alert", level: buf[5], description: buf[6] });
  if (buf[0] === 0x16) {
    const hs = buf.subarray(5);
    if (hs.length < 39) return;
    if (hs[0] !== 2) return done({ result: "unexpected-handshake", type: hs[0] });
    const sidLen = hs[38];
    if (hs.length < 41 + sidLen) return;
    return done({ result: "server-hello", version: (hs[4] << 8) | hs[5], cipher: (hs[39 + sidLen] << 8) | hs[40 + sidLen] });
  }
  if (buf[0] !== 0x15) done({ result: "not-tls", bytes: buf.subarray(0, 16).toString("hex") });
});
`;

interface ProbeResult {
  result: "server-hello" | "alert" | "closed" | "timeout" | "error" | "not-tls" | "no-starttls" | "unexpected-handshake";
  version?: number;
  cipher?: number;
  level?: number;
  description?: number;
  code?: string;
  received?: string;
  stage?: string;
}

/** TLS 1.2 suites by IANA number, grouped by why they must not be negotiated. */
const WEAK_SUITES: Record<string, { why: string; suites: number[]; opensslHasThem: boolean }> = {
  RC4: { why: "broken stream cipher (RFC 7465)", suites: [0xc007, 0xc011, 0xc016, 0x0005, 0x0004, 0x0018], opensslHasThem: false },
  "3DES": { why: "64-bit block, Sweet32", suites: [0xc008, 0xc012, 0xc017, 0x000a, 0x0016, 0x001b], opensslHasThem: false },
  DES: { why: "56-bit key", suites: [0x0009, 0x0015, 0x001a], opensslHasThem: false },
  EXPORT: { why: "40-bit export grade, FREAK/Logjam", suites: [0x0003, 0x0006, 0x0008, 0x0014, 0x0017, 0x0019], opensslHasThem: false },
  "NULL encryption": { why: "no encryption at all", suites: [0xc006, 0xc010, 0xc015, 0x0002, 0x003b, 0x0001], opensslHasThem: true },
  "anonymous (aNULL)": { why: "no server authentication", suites: [0xc018, 0xc019, 0x00a6, 0x00a7, 0x0034], opensslHasThem: true },
  "CBC with SHA-1/SHA-2 MAC": { why: "not in Mozilla's intermediate profile (Lucky13-class padding oracles)", suites: [0xc009, 0xc00a, 0xc023, 0xc024], opensslHasThem: true },
};
/** ECDHE-ECDSA-AES128-GCM-SHA256: in the intermediate list, and the test certificate is ECDSA. */
const GOOD_SUITE = 0xc02b;

type Version = "tls1" | "tls1_1" | "tls1_2" | "tls1_3";
/** The ClientHello's client_version for each s_client version flag (1.3 says 1.2 there). */
const HELLO_VERSION: Record<Version, string> = { tls1: "0x301", tls1_1: "0x302", tls1_2: "0x303", tls1_3: "0x303" };
const NEGOTIATED: Record<Version, string> = { tls1: "TLSv1", tls1_1: "TLSv1.1", tls1_2: "TLSv1.2", tls1_3: "TLSv1.3" };

interface ClientPort {
  name: string;
  port: number;
  starttls?: "smtp";
  log: "mail" | "dovecot";
  /** What the client sends once TLS is up, and the server's answer that proves the session works. */
  input: string;
  answer: RegExp;
}

const SMTP_QUIT = { input: "QUIT\r\n", answer: /^221 2\.0\.0 Bye/m };
const PORTS: Record<string, ClientPort> = {
  submissions: { name: "465 (implicit TLS)", port: 465, log: "mail", ...SMTP_QUIT },
  submission: { name: "587 after STARTTLS", port: 587, starttls: "smtp", log: "mail", ...SMTP_QUIT },
  imaps: { name: "993 (IMAPS)", port: 993, log: "dovecot", input: "a LOGOUT\r\n", answer: /^\* BYE /m },
  pop3s: { name: "995 (POP3S)", port: 995, log: "dovecot", input: "QUIT\r\n", answer: /^\+OK /m },
  smtp: { name: "25 after STARTTLS", port: 25, starttls: "smtp", log: "mail", ...SMTP_QUIT },
};

const count = (text: string, re: RegExp) => (text.match(new RegExp(re.source, "gm")) ?? []).length;
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const replyTo = (s: SmtpSession, sent: string) => s.replies.find((r) => r.sent === sent)?.reply;
const hex = (n: number) => `0x${n.toString(16).padStart(4, "0")}`;

/** openssl s_client inside a stack's namespace, with its handshake trace. */
function sClient(stack: TestStack, port: number, version: Version | undefined, options: { starttls?: "smtp"; input: string }) {
  const args = ["20", "openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-trace", "-ign_eof", "-cipher", "DEFAULT@SECLEVEL=0"];
  if (version) args.push(`-${version}`);
  if (options.starttls) args.push("-starttls", options.starttls);
  const r = stack.exec("timeout", args, options.input);
  const out = `${r.stdout}\n${r.stderr}`;
  return {
    status: r.status,
    out,
    /** client_version of the ClientHello that was sent. */
    offered: out.match(/ClientHello, Length=\d+\s+client_version=(0x[0-9a-f]+)/)?.[1],
    serverHello: /ServerHello/.test(out),
    /**
     * The protocol of the established session ("TLSv1", "TLSv1.1" ... as OpenSSL names them),
     * or "(NONE)" when none was. (The "New, TLSvX" line names the cipher's version, not the
     * session's: read the SSL-Session block.)
     */
    negotiated: /^New, \(NONE\), Cipher is \(NONE\)/m.test(out) ? "(NONE)" : out.match(/^\s+Protocol\s*: (TLSv1(?:\.[1-3])?)$/m)?.[1],
    cipher: out.match(/^New, \S+, Cipher is (\S+)/m)?.[1],
  };
}

/** The hand-built ClientHello or plaintext probe, run inside the namespace. */
async function probe(stack: TestStack, args: { port: number; host?: string; source?: string; starttls?: boolean; suites?: number[]; plain?: string }): Promise<ProbeResult> {
  const r = await stack.execAsync(process.execPath, ["-e", PROBE, JSON.stringify({ host: "127.0.0.1", ...args })]);
  if (r.status !== 0) throw new Error(`probe failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as ProbeResult;
}

/**
 * A local `openssl s_server` in the namespace on port 4433 with the stack's certificate,
 * for controls; resolves once it listens. Stop it with kill().
 */
async function sServer(stack: TestStack, args: string[]): Promise<ChildProcess> {
  const child = spawn("ip", ["netns", "exec", stack.ns, "openssl", "s_server", "-accept", "127.0.0.1:4433", "-www", "-cert", stack.paths.tlsCert, "-key", stack.paths.tlsKey, ...args], {
    env: { ...process.env, PATH: TOOL_PATH },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`openssl s_server did not start: ${output}`)), 10000);
    const onData = (d: Buffer) => {
      output += d.toString();
      if (output.includes("ACCEPT")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.on("exit", () => reject(new Error(`openssl s_server exited: ${output}`)));
  });
  return child;
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill();
  await exited;
}

/** Waits until `log` has gained a line matching `re` since `before` lines matched. */
async function logGains(stack: TestStack, log: "mail" | "dovecot", re: RegExp, before: number, what: string): Promise<void> {
  await stack.until(what, () => count(stack.log(log), re) > before, 10000);
}

const UNSUPPORTED_PROTOCOL = /unsupported protocol/;
const NO_SHARED_CIPHER = /no shared cipher/;

/**
 * Makes `client` pass postscreen on port 25 (its first session is told 450 4.3.2 at RCPT
 * after postscreen's tests), so that its next sessions reach smtpd. Fails unless that happened.
 */
async function passPostscreen(stack: TestStack, client: string): Promise<void> {
  const first = await stack.smtp({ port: 25, source: client, steps: [EHLO, `MAIL FROM:<probe@${OUTSIDE_DOMAIN}>`, "RCPT TO:<alice@example.com>", "QUIT"] });
  expect(first.banner).toMatch(/^220-/);
  expect(replyTo(first, "RCPT TO:<alice@example.com>")).toBe("450 4.3.2 Service currently unavailable");
  await stack.until(`postscreen to pass ${client}`, () => new RegExp(`postscreen\\[\\d+\\]: PASS NEW \\[${escape(client)}\\]:`).test(stack.log("mail")));
}

describe("TLS and plaintext on the client ports", () => {
  requireTools("postconf", "doveconf", "doveadm", "sievec", "rspamadm", "ip", "openssl");
  requireRoot("the stack runs in a network namespace of its own");

  let stack: TestStack;
  beforeAll(async () => {
    stack = await TestStack.start(fullConfig());
  }, 180000);
  afterAll(() => stack?.stop());

  describe("controls: the test clients really speak what they offer", () => {
    test.each(["tls1", "tls1_1"] as const)("s_client -%s at SECLEVEL=0 sends that ClientHello and completes it with a server that allows it", async (version) => {
      const server = await sServer(stack, [`-${version}`, "-cipher", "DEFAULT@SECLEVEL=0"]);
      try {
        const c = sClient(stack, 4433, version, { input: "GET / HTTP/1.0\r\n\r\n" });
        expect(c.offered).toBe(HELLO_VERSION[version]);
        expect(c.negotiated).toBe(NEGOTIATED[version]);
        expect(c.cipher).not.toBe("(NONE)");
        expect(c.status).toBe(0);
      } finally {
        await stopServer(server);
      }
    });

    test("the ClientHello probe gets a ServerHello for an allowed suite from Postfix and Dovecot", async () => {
      for (const p of [PORTS.submissions, PORTS.submission, PORTS.imaps, PORTS.pop3s]) {
        const r = await probe(stack, { port: p.port, source: source(42), starttls: p.starttls === "smtp", suites: [GOOD_SUITE] });
        expect({ port: p.port, ...r }).toEqual({ port: p.port, result: "server-hello", version: 0x0303, cipher: GOOD_SUITE });
      }
    });

    test("the ClientHello probe gets a ServerHello for each weak class OpenSSL still has, from a server that allows them", async () => {
      const classes = Object.entries(WEAK_SUITES).filter(([, c]) => c.opensslHasThem);
      expect(classes.length).toBeGreaterThan(0);
      for (const [name, { suites }] of classes) {
        const server = await sServer(stack, ["-tls1_2", "-cipher", "ALL:eNULL@SECLEVEL=0"]);
        try {
          const r = await probe(stack, { port: 4433, suites });
          expect({ name, result: r.result }).toEqual({ name, result: "server-hello" });
          expect(suites).toContain(r.cipher);
        } finally {
          await stopServer(server);
        }
      }
    });
  });

  const refusedVersions = ["tls1", "tls1_1"] as const;
  const acceptedVersions = ["tls1_2", "tls1_3"] as const;
  const versionCases = <V extends Version>(ports: ClientPort[], versions: readonly V[]) => ports.flatMap((p) => versions.map((v) => [p.name, v, p] as [string, V, ClientPort]));
  const ALL_PORTS = [PORTS.submissions, PORTS.submission, PORTS.imaps, PORTS.pop3s, PORTS.smtp];

  test.each(versionCases(ALL_PORTS, refusedVersions))("%s refuses -%s", async (_name, version, p) => {
    const before = count(stack.log(p.log), UNSUPPORTED_PROTOCOL);
    const c = sClient(stack, p.port, version, p);
    expect(c.offered).toBe(HELLO_VERSION[version]);
    expect(c.serverHello).toBe(false);
    expect(c.negotiated).toBe("(NONE)");
    expect(c.status).not.toBe(0);
    expect(c.out).not.toMatch(p.answer);
    // The server, not the client, said no.
    await logGains(stack, p.log, UNSUPPORTED_PROTOCOL, before, `the ${p.log} log to record the refused ${version} handshake on ${p.port}`);
  });

  test.each(versionCases(ALL_PORTS, acceptedVersions))("%s accepts -%s (control)", (_name, version, p) => {
    const c = sClient(stack, p.port, version, p);
    expect(c.offered).toBe(HELLO_VERSION[version]);
    expect(c.negotiated).toBe(NEGOTIATED[version]);
    expect(c.out).toMatch(p.answer);
  });

  const weakCases = [PORTS.submissions, PORTS.submission, PORTS.imaps, PORTS.pop3s].flatMap((p) => Object.entries(WEAK_SUITES).map(([name, c]) => [p.name, name, c.why, p, c.suites] as const));
  test.each(weakCases)("%s refuses %s suites (%s) over TLS 1.2", async (_port, _name, _why, p, suites) => {
    const before = count(stack.log(p.log), NO_SHARED_CIPHER);
    const r = await probe(stack, { port: p.port, source: source(42), starttls: p.starttls === "smtp", suites });
    // Postfix answers with a handshake_failure alert (40); Dovecot just closes.
    expect(r.result === "alert" || r.result === "closed").toBe(true);
    if (r.result === "alert") expect(r.description).toBe(40);
    if (r.result === "closed") expect(r.stage).toBe("hello");
    await logGains(stack, p.log, NO_SHARED_CIPHER, before, `the ${p.log} log to record no shared cipher on ${p.port} for ${suites.map(hex).join(",")}`);
  });

  describe("no plaintext login", () => {
    test("the only public listeners are 25, 465, 587, 993, 995 and nginx's 443: no plaintext IMAP (143) or POP3 (110)", () => {
      const r = stack.exec("ss", ["-Hltn"]);
      expect(r.status).toBe(0);
      const listeners = r.stdout
        .split("\n")
        .filter(Boolean)
        .map((l) => l.trim().split(/\s+/)[3])
        .filter((local) => !/^(127\.0\.0\.1|\[::1\]):/.test(local));
      const ports = [...new Set(listeners.map((l) => Number(l.slice(l.lastIndexOf(":") + 1))))].sort((a, b) => a - b);
      expect(ports).toEqual([25, 443, 465, 587, 993, 995]);
    });

    test.each([
      [143, "127.0.0.1"],
      [143, HOST_IP],
      [110, "127.0.0.1"],
      [110, HOST_IP],
    ])("port %d on %s: connection refused", async (port, host) => {
      const r = await probe(stack, { port, host, source: source(43), plain: "a CAPABILITY\r\n" });
      expect(r).toMatchObject({ result: "error", code: "ECONNREFUSED" });
      // Control: the TLS port on the same address is open.
      const open = await probe(stack, { port: port === 143 ? 993 : 995, host, source: source(43), suites: [GOOD_SUITE] });
      expect(open.result).toBe("server-hello");
    });

    test("a plaintext LOGIN sent to 993 gets no answer but a closed connection, and Dovecot logs a failed TLS handshake", async () => {
      const r = await probe(stack, { port: 993, source: source(44), plain: `a LOGIN alice@example.com "${stack.password("alice@example.com")}"\r\n` });
      expect(r.result).toBe("closed");
      expect(r.received).toBe("");
      await stack.until("Dovecot to log the plaintext attempt", () => new RegExp(`imap-login: .*SSL_accept\\(\\) failed: .*rip=${escape(source(44))}`).test(stack.log("dovecot")), 10000);
      expect(stack.log("dovecot")).not.toMatch(new RegExp(`imap-login: Login: user=<alice@example\\.com>.*rip=${escape(source(44))}`));
    });

    test("a plaintext USER/PASS sent to 995 gets nothing but a closed connection", async () => {
      const r = await probe(stack, { port: 995, source: source(44), plain: "USER alice@example.com\r\nPASS x\r\n" });
      expect(r.result).toBe("closed");
      expect(r.received).toBe("");
    });

    test("over TLS on 993: pre-login CAPABILITY offers AUTH=PLAIN without LOGINDISABLED, and LOGIN works (control)", () => {
      const pass = stack.password("alice@example.com");
      const c = sClient(stack, 993, undefined, { input: `a CAPABILITY\r\nb LOGIN alice@example.com "${pass}"\r\nc LOGOUT\r\n` });
      expect(c.negotiated).toMatch(/^TLSv1\.[23]$/);
      // The pre-login CAPABILITY answer (the first one; after login the list is longer).
      const capability = c.out.match(/^\* CAPABILITY ([^\r\n]*)\r?\na OK Pre-login/m)?.[1];
      expect({ capability, out: capability ? "" : c.out }).toMatchObject({ capability: expect.stringMatching(/\bAUTH=PLAIN\b/) });
      expect(capability).not.toMatch(/\bLOGINDISABLED\b/);
      // The greeting's capabilities, when it carries them, say the same.
      for (const greeting of c.out.matchAll(/^\* OK \[CAPABILITY ([^\]]*)\]/gm)) {
        expect(greeting[1]).toMatch(/\bAUTH=PLAIN\b/);
        expect(greeting[1]).not.toMatch(/\bLOGINDISABLED\b/);
      }
      expect(c.out).toMatch(/^b OK .*Logged in/m);
    });
  });

  describe("AUTH only inside TLS, and never on port 25", () => {
    const ADVERTISES_AUTH = /^250[- ]AUTH\b/m;

    test("587: EHLO before STARTTLS offers STARTTLS but not AUTH, and AUTH is refused; after STARTTLS AUTH is offered (control)", async () => {
      const s = await stack.smtp({ port: 587, source: source(45), steps: [EHLO, "AUTH PLAIN AGFsaWNlAHg=", { starttls: true }, EHLO, "QUIT"] });
      const [before, , , after] = s.replies;
      expect(before.sent).toBe(EHLO);
      expect(before.reply).toMatch(/^250[- ]STARTTLS$/m);
      expect(before.reply).not.toMatch(/AUTH/);
      expect(replyTo(s, "AUTH PLAIN AGFsaWNlAHg=")).toBe("530 5.7.0 Must issue a STARTTLS command first");
      expect(s.tls).toMatch(/^TLSv1\.[23]$/);
      expect(after.sent).toBe(EHLO);
      expect(after.reply).toMatch(/^250[- ]AUTH PLAIN LOGIN$/m);
    });

    test("465: AUTH is offered inside the implicit TLS (control)", async () => {
      const s = await stack.smtp({ port: 465, source: source(45), implicitTls: true, steps: [EHLO, "QUIT"] });
      expect(s.tls).toMatch(/^TLSv1\.[23]$/);
      expect(replyTo(s, EHLO)).toMatch(/^250[- ]AUTH PLAIN LOGIN$/m);
    });

    test("25, from an internet client past postscreen: STARTTLS offered and TLS 1.2+ negotiated, AUTH neither offered nor accepted, before or after STARTTLS", async () => {
      const client = source(46);
      await passPostscreen(stack, client);
      const s = await stack.smtp({ port: 25, source: client, steps: [EHLO, { starttls: true }, EHLO, "AUTH PLAIN AGFsaWNlAHg=", "QUIT"] });
      expect(s.banner).toBe(`220 ${stack.config.hostname} ESMTP`);
      const [before, , after] = s.replies;
      expect(before.reply).toMatch(/^250[- ]STARTTLS$/m);
      expect(before.reply).not.toMatch(ADVERTISES_AUTH);
      expect(s.tls).toMatch(/^TLSv1\.[23]$/);
      expect(after.sent).toBe(EHLO);
      expect(after.reply).toMatch(/^250 /m);
      expect(after.reply).not.toMatch(ADVERTISES_AUTH);
      expect(after.reply).not.toMatch(/STARTTLS/);
      expect(replyTo(s, "AUTH PLAIN AGFsaWNlAHg=")).toBe("503 5.5.1 Error: authentication not enabled");
    });
  });
});

describe("inboundTlsMinVersion: TLSv1.3 raises the floor on port 25 only", () => {
  requireTools("postconf", "doveconf", "doveadm", "sievec", "ip", "openssl");
  requireRoot("the stack runs in a network namespace of its own");

  let stack: TestStack;
  beforeAll(async () => {
    const input: MailConfigInput = { ...fullConfig(), inboundTlsMinVersion: "TLSv1.3" };
    // No rspamd: TLS is Postfix's and Dovecot's alone, and the stack starts in seconds.
    stack = await TestStack.start(input, { variant: "unfiltered" });
  }, 180000);
  afterAll(() => stack?.stop());

  test("25 refuses TLS 1.2", async () => {
    const before = count(stack.log("mail"), UNSUPPORTED_PROTOCOL);
    const c = sClient(stack, 25, "tls1_2", PORTS.smtp);
    expect(c.offered).toBe("0x303");
    expect(c.serverHello).toBe(false);
    expect(c.negotiated).toBe("(NONE)");
    await logGains(stack, "mail", UNSUPPORTED_PROTOCOL, before, "Postfix to log the refused TLS 1.2 handshake on 25");
  });

  test("25 accepts TLS 1.3 (control)", () => {
    const c = sClient(stack, 25, "tls1_3", PORTS.smtp);
    expect(c.negotiated).toBe("TLSv1.3");
    expect(c.out).toMatch(PORTS.smtp.answer);
  });

  test.each([PORTS.submission, PORTS.submissions, PORTS.imaps])("$name still accepts TLS 1.2", (p) => {
    const c = sClient(stack, p.port, "tls1_2", p);
    expect(c.negotiated).toBe("TLSv1.2");
    expect(c.out).toMatch(p.answer);
  });
});
