/**
 * Hardening against the real daemons (test/support/stack.ts), each finding tried as an
 * attacker or a curious recipient would: mail to the host's system accounts, ETRN, and the
 * client's address in the Received header of an authenticated submission.
 */
import { existsSync, readdirSync } from "node:fs";
import type { MailConfigInput } from "@mailstack/core";
import { HOST_IP, message, OUTSIDE_DOMAIN, OUTSIDE_IP, type SmtpSession, source, TestStack } from "../support/stack";
import { requireRoot, requireTools } from "../support/tools";

requireTools("postconf", "doveconf", "doveadm", "sievec", "rspamadm", "ip", "sendmail");
requireRoot("the stack runs in a network namespace of its own");

const INPUT: MailConfigInput = {
  domain: "example.com",
  mailboxes: [
    { address: "alice@example.com", password: "first long test passphrase" },
    { address: "bob@example.com", password: "second long test passphrase" },
  ],
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

describe("small leaks (issue 13.7)", () => {
  test("ETRN is neither offered nor accepted on 25 and 587", async () => {
    const s25 = await stack.smtp({ port: 25, source: CLIENT, steps: [EHLO, "ETRN example.com", "QUIT"] });
    expect(replyTo(s25, EHLO)).toMatch(/^250 /m);
    expect(replyTo(s25, EHLO)).not.toMatch(/ETRN/);
    expect(replyTo(s25, "ETRN example.com")).toMatch(/^5\d\d /);
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
