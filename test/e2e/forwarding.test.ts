/**
 * Forwarding off the host, run for real (test/support/stack.ts): an alias forwards to an outside
 * address, and the mail leaves with an SRS envelope sender that PostSRSd (Debian's package, the
 * same 1.10 as Ubuntu 24.04's) signs, so that the next hop's SPF check passes for this host;
 * bounces to such an address go back to the original sender, forged ones are refused, our own
 * users' mail keeps its envelope, and only Postfix may use the SRS tables.
 *
 * The next hop is a sink SMTP server (test/support/smtp-sink.mjs) on the outside domain's server
 * address: one provider hosts the original sender's domain and the one the alias forwards to,
 * and its server also returns the bounce (from an address rspamd does not greylist). Two test-only Postfix settings get mail there: a transport for the outside
 * domains (every address here is local, and port 25 is Postfix's own), and the host's public
 * address as the SMTP client's source, which it is on the host (the Elastic IP) and which the
 * namespace would otherwise not pick. SPF is evaluated by mailauth against the stack's own DNS
 * (the namespace's unbound, which serves the core's records and the outside domain's).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type MailConfigInput, POSTSRSD } from "@mailstack/core";
import { spf } from "mailauth/lib/spf";
import { escapeRegExp, header, HOST_IP, message, OUTSIDE_DOMAIN, OUTSIDE_IP, source, TestStack } from "../support/stack";
import { requireRoot, requireTools } from "../support/tools";

requireTools("postconf", "postmap", "doveconf", "doveadm", "sievec", "rspamadm", "ip", "nft", "dig", "setpriv", "postsrsd");
requireRoot("the stack runs in a network namespace of its own");

/** Where the alias forwards to: another domain of the outside provider, whose server is the sink. */
const DESTINATION = "elsewhere.example";
const FRIEND = `friend@${DESTINATION}`;
/** The sink: the provider's server, the destination's and the original sender's. */
const SINK_IP = OUTSIDE_IP;
const SINK_PORT = 2525;
const SENDER = `news@${OUTSIDE_DOMAIN}`;
const ALIAS = "fwd@example.com";

const INPUT: MailConfigInput = {
  domain: "example.com",
  extraDomains: ["example.org"],
  allowExternalForwarding: true,
  mailboxes: [
    { address: "alice@example.com", password: "first long test passphrase" },
    { address: "bob@example.com", password: "second long test passphrase" },
  ],
  aliases: [{ address: ALIAS, to: ["bob@example.com", FRIEND] }],
};

const BODY = "Minutes of the planning meeting: budget review, hiring timeline, office move, quarterly targets and the customer survey results.\n";
/** An SRS0 address of ours for `local@domain`: hash, time stamp, original domain and local part. */
const srs0 = (local: string, domain: string) => new RegExp(`^SRS0=[A-Za-z0-9+/]{4}=[A-Za-z0-9]{2}=${escapeRegExp(domain)}=${escapeRegExp(local)}@example\\.com$`, "i");

interface Relayed {
  client: string;
  helo: string;
  from: string;
  rcpts: string[];
  data: string;
}

let stack: TestStack;
let sink: ChildProcess;
let sinkDir: string;
let nextSource = 40;
const newSource = () => source(nextSource++);

beforeAll(async () => {
  const route = `smtp:[${SINK_IP}]:${SINK_PORT}`;
  stack = await TestStack.start(INPUT, {
    postfixOverrides: { transport_maps: `inline:{ ${DESTINATION}=${route}, ${OUTSIDE_DOMAIN}=${route} }`, smtp_bind_address: HOST_IP },
  });
  // The host's firewall, as its bootstrap loads it before the daemons start.
  const nft = stack.exec("nft", ["-f", stack.host.path("/etc/nftables.conf")]);
  if (nft.status !== 0) throw new Error(`nft: ${nft.stderr}`);
  sinkDir = mkdtempSync("/tmp/ms-sink-");
  sink = spawn("ip", ["netns", "exec", stack.ns, process.execPath, join(__dirname, "../support/smtp-sink.mjs"), SINK_IP, String(SINK_PORT), sinkDir], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    sink.stdout!.once("data", () => resolve());
    sink.once("exit", (code) => reject(new Error(`the sink exited (${code})`)));
  });
  await stack.passPostscreen(OUTSIDE_IP, "EHLO mx.outside.example");
}, 240000);

afterAll(async () => {
  sink?.kill();
  await stack?.stop();
  if (sinkDir) rmSync(sinkDir, { recursive: true, force: true });
});

/** Every message the sink has received, in order. */
function relayed(): Relayed[] {
  return readdirSync(sinkDir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(sinkDir, f), "utf8")) as Relayed);
}

/** Waits for the sink to receive the message with `subject`. */
async function relayedWith(subject: string): Promise<Relayed> {
  let found: Relayed | undefined;
  await stack.until(`the sink to receive "${subject}"`, () => (found = relayed().find((m) => m.data.includes(`Subject: ${subject}\r\n`))) !== undefined);
  return found!;
}

/** Mail as another server sends it to port 25 (no AUTH). */
function inbound(from: string, to: string[], data: string) {
  return stack.smtp({ port: 25, source: OUTSIDE_IP, steps: ["EHLO mx.outside.example", `MAIL FROM:<${from}>`, ...to.map((t) => `RCPT TO:<${t}>`), { data }, "QUIT"] });
}

/** DNS answers from the namespace's unbound (the test zone), as dns.promises.resolve gives them. */
async function zone(name: string, type: string): Promise<unknown[]> {
  const r = stack.exec("dig", ["+short", "-t", type, name.replace(/\.$/, "")]);
  if (r.status !== 0) throw Object.assign(new Error(`dig ${type} ${name}: ${r.stderr}`), { code: "ESERVFAIL" });
  const lines = r.stdout.split("\n").filter(Boolean);
  if (lines.length === 0) throw Object.assign(new Error(`no ${type} for ${name}`), { code: "ENOTFOUND" });
  if (type === "TXT") return lines.map((l) => [...l.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]));
  if (type === "MX") return lines.map((l) => ({ priority: Number(l.split(" ")[0]), exchange: l.split(" ")[1].replace(/\.$/, "") }));
  return lines;
}

/** The SPF verdict the next hop reaches for a message relayed to the sink, with `sender`. */
async function spfAtNextHop(m: Relayed, sender = m.from): Promise<string> {
  const r = await spf({ sender, ip: m.client, helo: m.helo, mta: `mx.${DESTINATION}`, resolver: zone as never });
  return r.status.result;
}

/** A lookup in a PostSRSd table as the given user, with Postfix's own client (postmap). */
const lookup = (user: string, table: "forward" | "reverse", key: string) =>
  stack.exec("setpriv", [
    `--reuid=${user}`,
    `--regid=${user}`,
    "--clear-groups",
    "postmap",
    "-c",
    stack.paths.postfixConfig,
    "-q",
    key,
    `tcp:${POSTSRSD.listen}:${table === "forward" ? POSTSRSD.forwardPort : POSTSRSD.reversePort}`,
  ]);

/** The SRS address the first test's message left with, for the tests of returned mail. */
let srsAddress: string;

describe("forwarding to an outside address", () => {
  test("mail from an outside sender leaves with an SRS0 sender of ours, which passes SPF where the original fails; the local copy keeps the original", async () => {
    const subject = `forwarded ${Date.now()}`;
    const s = await inbound(SENDER, [ALIAS], message(SENDER, ALIAS, subject, BODY));
    expect(s.replies.find((r) => r.sent === "DATA")?.reply).toMatch(/\n250 2\.0\.0 Ok: queued/);

    const out = await relayedWith(subject);
    expect(out.rcpts).toEqual([FRIEND]);
    expect(out.from).toMatch(srs0("news", OUTSIDE_DOMAIN));
    // The next hop sees the host's address (and HELO), which the primary domain's SPF names.
    expect(out.client).toBe(HOST_IP);
    expect(out.helo).toBe(stack.config.hostname);
    expect(await spfAtNextHop(out)).toBe("pass");
    // The original sender would have failed there: outside.example allows only its own server.
    expect(await spfAtNextHop(out, SENDER)).toBe("fail");
    // Only the envelope is rewritten: the message's own addresses are as the sender wrote them.
    expect(header(out.data, "From")).toEqual([`From: ${SENDER}`]);
    expect(header(out.data, "To")).toEqual([`To: ${ALIAS}`]);
    srsAddress = out.from;

    // The copy delivered here (the alias also names bob) has the real sender as Return-Path.
    await stack.until("bob's copy", async () => (await stack.messages("bob@example.com")).some((m) => m.source.includes(`Subject: ${subject}`)));
    const local = (await stack.messages("bob@example.com")).find((m) => m.source.includes(`Subject: ${subject}`))!;
    expect(header(local.source, "Return-Path")).toEqual([`Return-Path: <${SENDER}>`]);
  });

  test("a bounce to that SRS address is accepted, reversed and delivered to the original sender", async () => {
    expect(srsAddress).toMatch(srs0("news", OUTSIDE_DOMAIN));
    const subject = `Undelivered Mail Returned to Sender ${Date.now()}`;
    const dsn = message(`MAILER-DAEMON@mx.${OUTSIDE_DOMAIN}`, srsAddress, subject, `The mail to ${FRIEND} could not be delivered: mailbox full.\n`);
    const s = await inbound("", [srsAddress], dsn);
    expect(s.replies.find((r) => r.sent === `RCPT TO:<${srsAddress}>`)?.reply).toBe("250 2.1.5 Ok");
    expect(s.replies.find((r) => r.sent === "DATA")?.reply).toMatch(/\n250 2\.0\.0 Ok: queued/);

    const back = await relayedWith(subject);
    expect(back.from).toBe("");
    expect(back.rcpts).toEqual([SENDER]);
    // The bouncing server's headers (and any signature over them) are left alone.
    expect(header(back.data, "To")).toEqual([`To: ${srsAddress}`]);
  });

  test("a forged or altered SRS address is refused at RCPT, next to the genuine one", async () => {
    expect(srsAddress).toMatch(srs0("news", OUTSIDE_DOMAIN));
    const [, hash, rest] = /^SRS0=([^=]{4})=(.*)$/i.exec(srsAddress)!;
    const forgedHash = `SRS0=${hash === "AAAA" ? "BBBB" : "AAAA"}=${rest}`;
    // A valid hash, but for another original address: the hash covers it.
    const otherVictim = srsAddress.replace(/=news@example\.com$/i, "=victim@example.com");
    // A time stamp from about half a year ago (it counts days, base32, in two characters).
    const stale = srsAddress.replace(/^(SRS0=[^=]{4}=)(..)/i, (_m, head: string, ts: string) => {
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
      const days = alphabet.indexOf(ts[0].toUpperCase()) * 32 + alphabet.indexOf(ts[1].toUpperCase());
      const old = (days - 180 + 1024) % 1024;
      return `${head}${alphabet[old >> 5]}${alphabet[old & 31]}`;
    });
    const rcpts = [srsAddress, forgedHash, otherVictim, stale];
    const s = await stack.smtp({
      port: 25,
      source: OUTSIDE_IP,
      steps: ["EHLO mx.outside.example", "MAIL FROM:<>", ...rcpts.map((r) => `RCPT TO:<${r}>`), "RSET", "QUIT"],
    });
    const reply = (rcpt: string) => s.replies.find((r) => r.sent === `RCPT TO:<${rcpt}>`)?.reply;
    expect(reply(srsAddress)).toBe("250 2.1.5 Ok");
    for (const forged of [forgedHash, otherVictim, stale]) expect(reply(forged)).toMatch(/^550 5\.1\.1 <[^>]+>: Recipient address rejected: User unknown in virtual mailbox table$/);
  });

  test("mail our own users send keeps its envelope sender, which passes SPF as it is; only outside senders are rewritten", async () => {
    // The same alias, from outside and from alice: only the outside sender's envelope changes.
    const outsideSubject = `from outside ${Date.now()}`;
    await inbound(SENDER, [ALIAS], message(SENDER, ALIAS, outsideSubject, BODY));
    expect((await relayedWith(outsideSubject)).from).toMatch(srs0("news", OUTSIDE_DOMAIN));
    const subject = `from alice ${Date.now()}`;
    const auth = `AUTH PLAIN ${Buffer.from(`\0alice@example.com\0${stack.password("alice@example.com")}`).toString("base64")}`;
    const s = await stack.smtp({
      port: 587,
      source: newSource(),
      steps: ["EHLO client.example.net", { starttls: true }, "EHLO client.example.net", auth, "MAIL FROM:<alice@example.com>", `RCPT TO:<${ALIAS}>`, { data: message("alice@example.com", ALIAS, subject, BODY) }, "QUIT"],
    });
    expect(s.replies.find((r) => r.sent === "DATA")?.reply).toMatch(/\n250 2\.0\.0 Ok: queued/);
    const out = await relayedWith(subject);
    expect(out.from).toBe("alice@example.com");
    expect(out.rcpts).toEqual([FRIEND]);
    expect(await spfAtNextHop(out)).toBe("pass");

    // What PostSRSd makes of each kind of sender, asked as Postfix asks it: hosted domains and
    // the host name (system mail) stay as they are, an outside sender becomes SRS0.
    for (const hosted of ["alice@example.com", "someone@example.org", `root@${stack.config.hostname}`]) {
      const r = lookup("postfix", "forward", hosted);
      // Not found, or (the SRS domain itself) found as itself.
      expect(r.stdout.trim() === "" || r.stdout.trim() === hosted).toBe(true);
    }
    expect(lookup("postfix", "forward", SENDER).stdout.trim()).toMatch(srs0("news", OUTSIDE_DOMAIN));
    // A subdomain that is not hosted has SPF of its own: rewritten.
    expect(lookup("postfix", "forward", "x@sub.example.org").stdout.trim()).toMatch(srs0("x", "sub.example.org"));
  });

  test("only Postfix may query the SRS tables: any other local process, root included, is refused by the host firewall", () => {
    // Postfix's processes get answers from both tables.
    const signed = lookup("postfix", "forward", SENDER).stdout.trim();
    expect(signed).toMatch(srs0("news", OUTSIDE_DOMAIN));
    expect(lookup("postfix", "reverse", signed)).toMatchObject({ status: 0, stdout: `${SENDER}\n` });
    // Anyone else: the connection itself is refused, before PostSRSd reads a byte.
    // Were it let through, the answer would be one line (PostSRSd keeps the connection open).
    const ask = (port: number) => `exec 3<>/dev/tcp/${POSTSRSD.listen}/${port} && printf 'get ${SENDER}\\n' >&3 && read -r -t 5 line <&3 && echo "$line"`;
    for (const port of [POSTSRSD.forwardPort, POSTSRSD.reversePort]) {
      for (const user of [["nobody", "nogroup"], ["dovecot", "dovecot"], ["_rspamd", "_rspamd"]]) {
        const r = stack.exec("setpriv", [`--reuid=${user[0]}`, `--regid=${user[1]}`, "--clear-groups", "bash", "-c", ask(port)]);
        expect({ user: user[0], port, status: r.status, stdout: r.stdout }).toEqual({ user: user[0], port, status: 1, stdout: "" });
        expect(r.stderr).toMatch(/Connection refused/);
      }
      const root = stack.exec("bash", ["-c", ask(port)]);
      expect({ port, status: root.status, stdout: root.stdout }).toEqual({ port, status: 1, stdout: "" });
    }
  });
});
