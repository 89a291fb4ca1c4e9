/**
 * Hardening against the real daemons (test/support/stack.ts), each finding tried as an
 * attacker or a curious recipient would: mail to the host's system accounts, ETRN, and the
 * client's address in the Received header of an authenticated submission.
 */
import { existsSync, readdirSync } from "node:fs";
import type { MailConfigInput } from "@mailstack/core";
import { HOST_IP, message, OUTSIDE_DOMAIN, OUTSIDE_IP, type SmtpSession, source, TestStack } from "../support/stack";
import { probeArgs } from "../support/socket-probe";
import { requireRoot, requireTools } from "../support/tools";

requireTools("postconf", "doveconf", "doveadm", "sievec", "rspamadm", "ip", "sendmail", "ss", "setpriv", "python3");
requireRoot("the stack runs in a network namespace of its own");

const INPUT: MailConfigInput = {
  domain: "example.com",
  extraDomains: ["example.org"],
  mailboxes: [
    { address: "alice@example.com", password: "first long test passphrase", aliases: ["alice@example.org"] },
    { address: "bob@example.com", password: "second long test passphrase" },
    // The sending-limit tests' own logins and their recipients' mailbox.
    { address: "carol@example.com", password: "third long test passphrase" },
    { address: "dave@example.com", password: "fourth long test passphrase" },
    { address: "sink@example.com", password: "fifth long test passphrase" },
    // Limits of their own, above and below the stack's, and a login of the same test at the stack's.
    { address: "erin@example.com", password: "sixth long test passphrase", sendingLimits: { messagesPerHour: 8 } },
    { address: "frank@example.com", password: "seventh long test passphrase", sendingLimits: { messagesPerHour: 2 } },
    { address: "grace@example.com", password: "eighth long test passphrase" },
  ],
  // Small enough to reach in a test; the recipients' bucket leaks one every 10 s.
  sendingLimits: { messagesPerHour: 5, recipientsPerHour: 360, recipientsPerMessage: 100 },
  aliases: [{ address: "team@example.com", to: ["alice@example.com", "bob@example.com"] }],
  postmaster: "alice@example.com",
  abuse: "bob@example.com",
};
const HOST = "mail.example.com";
// The outside domain's own server: SPF and DMARC pass, so its mail is delivered.
const CLIENT = OUTSIDE_IP;
const EHLO = `EHLO mx.${OUTSIDE_DOMAIN}`;
/** Where local(8) would have written: a file here is mail on the root volume. */
const SPOOL = "/var/mail";

let stack: TestStack;
beforeAll(async () => {
  stack = await TestStack.start(INPUT);
  await stack.passPostscreen(CLIENT, EHLO);
}, 180000);
afterAll(() => stack?.stop());

const replyTo = (s: SmtpSession, sent: string) => s.replies.find((r) => r.sent === sent)?.reply;

/** Messages of a mailbox whose source contains `marker`, read over IMAPS. */
async function received(user: string, marker: string): Promise<string[]> {
  return (await stack.messages(user)).map((m) => m.source).filter((s) => s.includes(marker));
}

async function arrives(user: string, marker: string): Promise<string> {
  await stack.until(`a message with ${marker} for ${user}`, async () => (await received(user, marker)).length > 0, 60000);
  return (await received(user, marker))[0];
}

/** Submits a message through the host's own sendmail(1), as cron and other system jobs do. */
function sendmail(recipient: string, subject: string): void {
  const r = stack.exec("sendmail", ["-C", stack.paths.postfixConfig, "-f", "root", recipient], message(`root@${HOST}`, recipient, subject));
  if (r.status !== 0) throw new Error(`sendmail failed (${r.status}): ${r.stderr}`);
}

describe("mail to the host's system accounts (issue 13.1)", () => {
  const UNKNOWN = /^550 5\.1\.1 <[^>]+>: Recipient address rejected: User unknown in virtual alias table$/;
  const NO_LOCAL = /^550 5\.1\.1 <[^>]+>: Recipient address rejected: this host has no local mailboxes$/;
  const refused: [string, RegExp][] = [
    ...["nobody", "www-data", "daemon", "mail"].map((u): [string, RegExp] => [`${u}@${HOST}`, UNKNOWN]),
    // localhost is no name of this host to the internet: strict_rfc821_envelopes wants a domain with a dot.
    ["nobody@localhost", /^504 5\.5\.2 <nobody@localhost>: Recipient address rejected: need fully-qualified address$/],
    // The host's own address literal is a local domain to Postfix whatever mydestination says.
    [`nobody@[${HOST_IP}]`, NO_LOCAL],
    [`root@[${HOST_IP}]`, NO_LOCAL],
  ];

  test.each(refused)("port 25 without login: RCPT TO:<%s> is refused", async (rcpt, refusal) => {
    const s = await stack.smtp({ port: 25, source: CLIENT, steps: [EHLO, `MAIL FROM:<someone@${OUTSIDE_DOMAIN}>`, `RCPT TO:<${rcpt}>`, "RSET", "QUIT"] });
    expect(replyTo(s, `MAIL FROM:<someone@${OUTSIDE_DOMAIN}>`)).toBe("250 2.1.0 Ok");
    expect(replyTo(s, `RCPT TO:<${rcpt}>`)).toMatch(refusal);
  });

  test("the role addresses of the host name are accepted, and root@ reaches the postmaster's mailbox", async () => {
    const from = `someone@${OUTSIDE_DOMAIN}`;
    const s = await stack.smtp({
      port: 25,
      source: CLIENT,
      steps: [EHLO, `MAIL FROM:<${from}>`, `RCPT TO:<postmaster@${HOST}>`, `RCPT TO:<abuse@${HOST}>`, `RCPT TO:<root@${HOST}>`, { data: message(from, `root@${HOST}`, "to root over SMTP") }, "QUIT"],
    });
    for (const rcpt of [`postmaster@${HOST}`, `abuse@${HOST}`, `root@${HOST}`]) expect(replyTo(s, `RCPT TO:<${rcpt}>`)).toBe("250 2.1.5 Ok");
    expect(await arrives("alice@example.com", "to root over SMTP")).toContain(`To: root@${HOST}`);
    // abuse@ the host name goes where abuse@ of the domains goes.
    expect(await arrives("bob@example.com", "to root over SMTP")).toContain("to root over SMTP");
  });

  test("system mail (sendmail root) reaches the postmaster; mail for a system account bounces to it and nothing is written under /var/mail", async () => {
    const before = existsSync(SPOOL) ? readdirSync(SPOOL) : [];
    sendmail("root", "cron output for root");
    sendmail("nobody", "cron output for nobody");
    sendmail(`nobody@[${HOST_IP}]`, "mail for the address literal");
    expect(await arrives("alice@example.com", "cron output for root")).toContain("Subject: cron output for root");
    // Both refusals come back to root, i.e. to the postmaster, as bounces.
    const bounce = await arrives("alice@example.com", "Subject: cron output for nobody");
    expect(bounce).toMatch(/User unknown in virtual alias table/);
    const literal = await arrives("alice@example.com", "Subject: mail for the address literal");
    expect(literal).toMatch(/this host has no local mailboxes/);
    expect(existsSync(SPOOL) ? readdirSync(SPOOL) : []).toEqual(before);
    expect(stack.log("mail")).not.toMatch(/postfix\/local\[\d+\]: .*status=sent/);
  });
});

/** Submits one message as `user` on 587 with the envelope sender `envelope`; returns the reply to DATA. */
async function submitAs(user: string, envelope: string, data: string, client: string): Promise<string> {
  const auth = `AUTH PLAIN ${Buffer.from(`\0${user}\0${stack.password(user)}`).toString("base64")}`;
  const s = await stack.smtp({
    port: 587,
    source: client,
    steps: [EHLO, { starttls: true }, EHLO, auth, `MAIL FROM:<${envelope}>`, "RCPT TO:<bob@example.com>", { data }, "QUIT"],
  });
  expect(replyTo(s, auth)).toBe("235 2.7.0 Authentication successful");
  expect(replyTo(s, "RCPT TO:<bob@example.com>")).toBe("250 2.1.5 Ok");
  return replyTo(s, "DATA") ?? "";
}

describe("From: header spoofing (issue 13.4)", () => {
  const QUEUED = /\n250 2\.0\.0 Ok: queued/;

  test.each([
    ["another mailbox", "bob@example.com"],
    ["an unowned address of the other hosted domain", "nobody@example.org"],
    ["an alias that does not deliver to the sender", "info@example.com"],
    ["an outside address", `ceo@${OUTSIDE_DOMAIN}`],
    ["a second address after its own", "alice@example.com, bob@example.com"],
  ])("alice, with her own envelope sender, may not write %s in From:", async (_, header) => {
    const subject = `spoofed ${header}`;
    const reply = await submitAs("alice@example.com", "alice@example.com", message(header, "bob@example.com", subject), source(50));
    expect(reply).toMatch(/\n5\d\d 5\.7\.1 From: <[^>]+> is not an address alice@example\.com may send as$/);
    expect(stack.log("rspamd")).toMatch(/MAILSTACK_FROM_NOT_OWNED/);
    // Nothing was queued for it: the refusal came at DATA, before Postfix accepted the message.
    expect(stack.queue()).toEqual([]);
  });

  test.each([
    ["her own address, with a display name and in capitals", '"Alice" <ALICE@Example.COM>'],
    ["her mailbox alias in the other domain", "alice@example.org"],
    ["a group alias that delivers to her", "team@example.com"],
  ])("alice may write %s in From:, and the message arrives", async (_, header) => {
    const subject = `own from ${header}`;
    const reply = await submitAs("alice@example.com", "alice@example.com", message(header, "bob@example.com", subject), source(51));
    expect(reply).toMatch(QUEUED);
    expect(await arrives("bob@example.com", `Subject: ${subject}`)).toContain(`From: ${header}`);
  });
});

describe("sending limits per login (issue 13.2)", () => {
  const rateLimited = (limit: string) => new RegExp(`\\n451 4\\.7\\.1 This mailbox has reached its limit of ${limit} an hour; try again later$`);

  /** One session of `user` on 587 sending one message to each of `to`; every reply. */
  async function send(user: string, to: string[], subject: string, client: string): Promise<SmtpSession> {
    const auth = `AUTH PLAIN ${Buffer.from(`\0${user}\0${stack.password(user)}`).toString("base64")}`;
    return stack.smtp({
      port: 587,
      source: client,
      steps: [EHLO, { starttls: true }, EHLO, auth, `MAIL FROM:<${user}>`, ...to.map((t) => `RCPT TO:<${t}>`), { data: message(user, to[0], subject) }, "QUIT"],
      timeoutMs: 60000,
    });
  }
  const sinks = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `sink+${from + i}@example.com`);
  const queuedFrom = (user: string) => stack.queue().filter((q) => q.recipients.length > 0 && stack.log("mail").includes(`${q.queue_id}: from=<${user}>`));
  const QUEUED = /\n250 2\.0\.0 Ok: queued/;

  /** `user` sends `limit` messages, each queued, then one more, refused at `limit` an hour and not queued. */
  async function reachLimit(user: string, limit: number, client: string): Promise<void> {
    for (let i = 1; i <= limit; i++) expect([i, replyTo(await send(user, ["sink@example.com"], `${user} ${i}`, client), "DATA")]).toEqual([i, expect.stringMatching(QUEUED)]);
    const refused = await send(user, ["sink@example.com"], `${user} ${limit + 1}`, client);
    expect(replyTo(refused, "DATA")).toMatch(rateLimited(`${limit} messages`));
    expect(queuedFrom(user)).toEqual([]);
  }

  test("messages per hour: the message past the limit gets 451 4.7.1 and is not queued; another login still sends", async () => {
    for (let i = 1; i <= 5; i++) expect(replyTo(await send("carol@example.com", ["sink@example.com"], `carol ${i}`, source(60)), "DATA")).toMatch(/\n250 2\.0\.0 Ok: queued/);
    const refused = await send("carol@example.com", ["sink@example.com"], "carol 6", source(60));
    expect(replyTo(refused, "DATA")).toMatch(rateLimited("5 messages"));
    expect(queuedFrom("carol@example.com")).toEqual([]);
    // The refusal is logged with the rate's name and the login, for monitoring to count.
    expect(stack.log("rspamd")).toMatch(/ratelimit "mailstack_messages_per_hour\(messages:carol@example\.com\)" exceeded/);
    expect(replyTo(await send("bob@example.com", ["sink@example.com"], "bob while carol is limited", source(61)), "DATA")).toMatch(/\n250 2\.0\.0 Ok: queued/);
  });

  test("recipients per message and per hour: the 101st recipient gets 452 4.5.3; past 360 an hour a message is refused, and the bucket leaks one recipient every 10 s", async () => {
    const first = await send("dave@example.com", sinks(101), "dave 1", source(62));
    expect(first.replies.filter((r) => r.sent.startsWith("RCPT TO:") && r.reply === "250 2.1.5 Ok")).toHaveLength(100);
    expect(first.replies.find((r) => r.sent === "RCPT TO:<sink+100@example.com>")?.reply).toBe("452 4.5.3 Error: too many recipients");
    expect(replyTo(first, "DATA")).toMatch(/\n250 2\.0\.0 Ok: queued/);
    for (const [i, n] of [[2, 100], [3, 100], [4, 60]]) {
      expect(replyTo(await send("dave@example.com", sinks(n, 1000 * i), `dave ${i}`, source(62)), "DATA")).toMatch(/\n250 2\.0\.0 Ok: queued/);
    }
    // 360 recipients within the hour: 20 more would need 200 s of leaking.
    const refused = await send("dave@example.com", sinks(20, 5000), "dave 5", source(62));
    expect(replyTo(refused, "DATA")).toMatch(rateLimited("360 recipients"));
    expect(stack.log("rspamd")).toMatch(/ratelimit "mailstack_recipients_per_hour\(recipients:dave@example\.com\)" exceeded/);
    // Fifteen seconds later the bucket has room for one recipient again.
    await new Promise((resolve) => setTimeout(resolve, 15000));
    expect(replyTo(await send("dave@example.com", ["sink@example.com"], "dave 6", source(62)), "DATA")).toMatch(/\n250 2\.0\.0 Ok: queued/);
  }, 120000);

  test("a mailbox's own limit: erin (8 an hour) sends past the stack's 5, grace at the stack's is refused at her 6th, frank (2 an hour) at his 3rd", async () => {
    const exceeded = (user: string) => [...stack.log("rspamd").matchAll(/ratelimit "(\w+)\(messages:([^)]+)\)" exceeded/g)].filter((m) => m[2] === user).map((m) => m[1]);
    await reachLimit("erin@example.com", 8, source(63));
    // Her rate is named after her limit; monitoring counts it by the stack's rate's name.
    expect(exceeded("erin@example.com")).toEqual(["mailstack_messages_per_hour_8"]);
    await reachLimit("grace@example.com", 5, source(64));
    expect(exceeded("grace@example.com")).toEqual(["mailstack_messages_per_hour"]);
    await reachLimit("frank@example.com", 2, source(65));
    expect(exceeded("frank@example.com")).toEqual(["mailstack_messages_per_hour_2"]);
    // Three logins refused, and bob, who sent one message before, still sends.
    expect(replyTo(await send("bob@example.com", ["sink@example.com"], "bob while three are limited", source(61)), "DATA")).toMatch(QUEUED);
  }, 120000);
});

describe("small leaks (issue 13.7)", () => {
  test("ETRN is neither offered nor accepted on 25 and 587; VRFY tells nothing", async () => {
    const s25 = await stack.smtp({ port: 25, source: CLIENT, steps: [EHLO, "ETRN example.com", "VRFY alice@example.com", "QUIT"] });
    expect(replyTo(s25, EHLO)).toMatch(/^250 /m);
    expect(replyTo(s25, EHLO)).not.toMatch(/ETRN|VRFY/);
    expect(replyTo(s25, "ETRN example.com")).toMatch(/^5\d\d /);
    expect(replyTo(s25, "VRFY alice@example.com")).toBe("502 5.5.1 VRFY command is disabled");
    const s587 = await stack.smtp({ port: 587, source: source(41), steps: [EHLO, { starttls: true }, EHLO, "ETRN example.com", "QUIT"] });
    expect(replyTo(s587, EHLO)).toMatch(/^250 /m);
    expect(s587.replies.filter((r) => r.sent === EHLO).map((r) => r.reply).join("\n")).not.toMatch(/ETRN/);
    expect(replyTo(s587, "ETRN example.com")).toMatch(/^5\d\d /);
  });

  test("an authenticated submission reaches its recipient without the client's address or HELO name", async () => {
    const client = source(42);
    const helo = "EHLO alices-laptop.home.example";
    const auth = `AUTH PLAIN ${Buffer.from(`\0alice@example.com\0${stack.password("alice@example.com")}`).toString("base64")}`;
    const s = await stack.smtp({
      port: 587,
      source: client,
      steps: [helo, { starttls: true }, helo, auth, "MAIL FROM:<alice@example.com>", "RCPT TO:<bob@example.com>", { data: message("alice@example.com", "bob@example.com", "private submission") }, "QUIT"],
    });
    expect(replyTo(s, "DATA")).toMatch(/\n250 2\.0\.0 Ok: queued/);
    const delivered = await arrives("bob@example.com", "Subject: private submission");
    const [head] = delivered.replace(/\r\n/g, "\n").split("\n\n");
    expect(head).not.toContain(client);
    expect(head).not.toContain("alices-laptop");
    // The rest of the header stays: this host, the protocol and the TLS in use.
    expect(head).toMatch(/^Received: from authenticated-client\n\s+\(using TLSv1\.[23] [^\n]*\n(?:\s[^\n]*\n)*?\s+by mail\.example\.com \(Postfix\) with ESMTPSA id \w+/m);
  });
});

describe("rspamd and Redis reach only their own clients (issue 13.3)", () => {
  const probe = (user: string, group: string, kind: "unix" | "tcp", target: string): string => {
    const r = stack.exec("setpriv", probeArgs(user, group, kind, target));
    if (r.status !== 0) throw new Error(`probe as ${user} failed: ${r.stderr}`);
    return r.stdout.trim();
  };
  const learnSocket = (what: string) => `${stack.paths.dovecotBase}/rspamd-learn-${what}`;
  // Nothing but the daemon's own client may open these; rspamd's workers are the ones it needs.
  const OTHERS: [string, string][] = [
    ["nobody", "nogroup"],
    ["www-data", "www-data"],
    ["vmail", "vmail"],
  ];

  test.each(OTHERS)("as %s: the milter socket, rspamd's controller and Redis refuse, and no TCP port of theirs is open", (user, group) => {
    expect(probe(user, group, "unix", stack.paths.rspamdMilterSocket)).toBe("EACCES");
    expect(probe(user, group, "unix", stack.paths.rspamdControllerSocket)).toBe("EACCES");
    expect(probe(user, group, "unix", stack.paths.redisSocket)).toBe("EACCES");
    // Debian's defaults: the controller (trusting loopback, stock password "q1"), the proxy, the normal worker, Redis.
    for (const port of [11334, 11332, 11333, 6379]) expect(probe(user, group, "tcp", `127.0.0.1:${port}`)).toBe("ECONNREFUSED");
  });

  test("each socket opens for its own client: Postfix the milter, _rspamd the controller and Redis, vmail the learning services", () => {
    expect(probe("postfix", "postfix", "unix", stack.paths.rspamdMilterSocket)).toBe("connected");
    expect(probe("_rspamd", "_rspamd", "unix", stack.paths.rspamdControllerSocket)).toBe("connected");
    expect(probe("_rspamd", "_rspamd", "unix", stack.paths.redisSocket)).toBe("connected");
    for (const what of ["spam", "ham"]) {
      expect(probe("vmail", "vmail", "unix", learnSocket(what))).toBe("connected");
      for (const [user, group] of OTHERS.filter(([u]) => u !== "vmail")) expect(probe(user, group, "unix", learnSocket(what))).toBe("EACCES");
    }
    // rspamd really uses this Redis, through the socket.
    expect(stack.log("rspamd")).toContain(`uploaded redis script to unix:${stack.paths.redisSocket}`);
    expect(stack.log("rspamd")).not.toMatch(/cannot connect to redis|redis.*(refused|denied)/i);
  });

  test("no rspamd or Redis process listens on a TCP port", () => {
    const listening = stack.exec("ss", ["-H", "-l", "-t", "-n", "-p"]);
    expect(listening.status).toBe(0);
    expect(listening.stdout).not.toMatch(/"(rspamd|redis-server)"/);
  });
});
