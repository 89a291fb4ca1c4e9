/**
 * Open-relay battery against the real stack (test/support/stack.ts): an unauthenticated
 * client from the internet tries the classic relay tricks on port 25 (behind postscreen)
 * and on the submission ports; none may be relayed. Positive controls show that the same
 * sessions do accept what they should (a hosted recipient; an authenticated user's outside
 * recipient), so every refusal below is a refusal and not a broken session.
 */
import { fullConfig } from "../support/fixtures";
import { escapeRegExp as escape, HOST_IP, message, OUTSIDE_DOMAIN, type SmtpSession, type SmtpStep, source, TestStack } from "../support/stack";
import { requireRoot, requireTools } from "../support/tools";

/** The internet client of the port-25 battery; it passes postscreen once, in beforeAll. */
const RELAY_CLIENT = source(30);
/** Unauthenticated clients of the submission ports. */
const SUBMISSION_CLIENT = source(31);
/** The authenticated client (alice) on 587. */
const AUTH_CLIENT = source(32);
/** A client that fails AUTH (Dovecot then delays this address: nothing else uses it). */
const BAD_AUTH_CLIENT = source(33);
const EHLO = `EHLO client.${OUTSIDE_DOMAIN}`;
const VICTIM = `victim@${OUTSIDE_DOMAIN}`;

const RELAY_DENIED = /^554 5\.7\.1 <[^>]*>: Relay access denied$/;
const USER_UNKNOWN = /^550 5\.1\.1 <[^>]*>: Recipient address rejected: User unknown in virtual mailbox table$/;
/** The host's address literals are local domains to Postfix, whose only transport refuses. */
const NO_LOCAL_MAILBOXES = /^550 5\.1\.1 <[^>]*>: Recipient address rejected: this host has no local mailboxes$/;
const BAD_SYNTAX = /^501 5\.1\.3 Bad recipient address syntax$/;
const SENDER_DOMAIN_NOT_FOUND = /^450 4\.1\.8 <[^>]*>: Sender address rejected: Domain not found$/;
/** Submission without AUTH: smtpd_client_restrictions=permit_sasl_authenticated,reject. */
const CLIENT_REJECTED = /^554 5\.7\.1 <unknown\[198\.51\.100\.\d+\]>: Client host rejected: Access denied$/;

interface Trick {
  name: string;
  from: string;
  rcpt: string;
  /** The refusal Postfix gives, i.e. which rule caught the trick. */
  refusal: RegExp;
}

const trick = (name: string, rcpt: string, refusal = RELAY_DENIED, from = `sender@${OUTSIDE_DOMAIN}`): Trick => ({ name, from, rcpt, refusal });

/**
 * The classic tricks (as in the old relay-test scripts): the hosted names are example.com,
 * example.org and the host mail.example.com ([192.0.2.25]); outside.example exists in DNS.
 */
const TRICKS: Trick[] = [
  // Plain relaying and spelling variants of it.
  trick("plain outside recipient", VICTIM),
  trick("upper-case outside recipient", "VICTIM@OUTSIDE.EXAMPLE"),
  trick("outside domain with a trailing dot", `${VICTIM}.`),
  trick("IP literal of an outside host", "victim@[198.51.100.20]"),
  trick("subdomain of a hosted domain", "victim@sub.example.com"),
  trick("hosted domain as a prefix of an outside name", "victim@example.com.outside.example"),
  trick("domain that does not exist", "victim@nonexistent.invalid"),
  // Percent hack: user%outside@hosted.
  trick("percent hack via the hosted domain", "victim%outside.example@example.com"),
  trick("percent hack via the host name", "victim%outside.example@mail.example.com"),
  trick("percent hack via the host's IP literal", `victim%outside.example@[${HOST_IP}]`),
  trick("percent hack via localhost", "victim%outside.example@localhost"),
  trick("percent hack without a domain", "victim%outside.example"),
  trick("double percent hack", "victim%outside.example%example.com@example.com"),
  trick("percent hack to an outside IP literal", "victim%[198.51.100.20]@example.com"),
  // Bang paths (UUCP).
  trick("bang path", "outside.example!victim"),
  trick("bang path via the hosted domain", "outside.example!victim@example.com"),
  trick("bang path via the host name", "outside.example!victim@mail.example.com"),
  trick("bang path via the host's IP literal", `outside.example!victim@[${HOST_IP}]`),
  trick("multi-hop bang path", "example.com!outside.example!victim"),
  // Quoted local parts.
  trick("quoted address without a domain", `"${VICTIM}"`),
  trick("quoted percent hack without a domain", '"victim%outside.example"'),
  trick("quoted outside address at the hosted domain", `"${VICTIM}"@example.com`),
  trick("quoted outside address at the host name", `"${VICTIM}"@mail.example.com`),
  trick("quoted outside address at the host's IP literal", `"${VICTIM}"@[${HOST_IP}]`),
  trick("quoted percent hack at the hosted domain", '"victim%outside.example"@example.com'),
  trick("quoted bang path at the host name", '"outside.example!victim"@mail.example.com'),
  // a@b@c.
  trick("a@b@c via the hosted domain", `${VICTIM}@example.com`),
  trick("a@b@c via the host name", `${VICTIM}@mail.example.com`),
  trick("a@b@c via the host's IP literal", `${VICTIM}@[${HOST_IP}]`),
  // RFC 821 source routes.
  trick("source route via the hosted domain", `@example.com:${VICTIM}`),
  trick("source route via the host name", `@mail.example.com:${VICTIM}`),
  trick("source route via the host's IP literal", `@[${HOST_IP}]:${VICTIM}`),
  trick("two-hop source route", `@mail.example.com,@example.com:${VICTIM}`),
  // Malformed or local-looking addresses.
  trick("outside address with a %hosted suffix", `${VICTIM}%example.com`, BAD_SYNTAX),
  trick("outside address with a :hosted suffix", `${VICTIM}:example.com`, BAD_SYNTAX),
  trick("unknown user at the host's IP literal", `victim@[${HOST_IP}]`, NO_LOCAL_MAILBOXES),
  trick("unknown user at [127.0.0.1]", "victim@[127.0.0.1]", NO_LOCAL_MAILBOXES),
  // Unknown sender/recipient combinations.
  trick("forged hosted sender to an outside recipient", VICTIM, RELAY_DENIED, "alice@example.com"),
  trick("forged postmaster of the host to an outside recipient", VICTIM, RELAY_DENIED, "postmaster@mail.example.com"),
  trick("null sender to an outside recipient", VICTIM, RELAY_DENIED, ""),
  trick("outside sender to itself", VICTIM, RELAY_DENIED, VICTIM),
  trick("sender domain that does not exist to an outside recipient", VICTIM, SENDER_DOMAIN_NOT_FOUND, "x@nonexistent.invalid"),
  trick("outside sender to an unknown user of a hosted domain", "nobody@example.com", USER_UNKNOWN),
  trick("outside sender to an unknown user of the second hosted domain", "nobody@example.org", USER_UNKNOWN),
];

const rcptReply = (s: SmtpSession, rcpt: string) => s.replies.find((r) => r.sent === `RCPT TO:<${rcpt}>`)?.reply;
const replyTo = (s: SmtpSession, sent: string) => s.replies.find((r) => r.sent === sent)?.reply;
const count = (text: string, re: RegExp) => (text.match(new RegExp(re.source, "gm")) ?? []).length;

describe("open relay", () => {
  requireTools("postconf", "doveconf", "doveadm", "sievec", "rspamadm", "ip");
  requireRoot("the stack runs in a network namespace of its own");

  let stack: TestStack;
  let firstSession: SmtpSession;
  let secondSession: SmtpSession;
  let hostedDomains: string[];

  beforeAll(async () => {
    stack = await TestStack.start(fullConfig());
    hostedDomains = [...stack.config.domains, stack.config.hostname, "localhost"];
    ({ first: firstSession, second: secondSession } = await stack.passPostscreen(RELAY_CLIENT, EHLO));
  }, 180000);
  afterAll(() => stack?.stop());

  test("the internet client passes postscreen first: 450 4.3.2 at RCPT once, then smtpd", () => {
    // postscreen's own SMTP engine: the multi-line pre-greeting banner, no PIPELINING.
    expect(firstSession.banner).toMatch(/^220-/);
    expect(replyTo(firstSession, EHLO)).not.toMatch(/PIPELINING/);
    expect(rcptReply(firstSession, "alice@example.com")).toBe("450 4.3.2 Service currently unavailable");
    const log = stack.log("mail");
    expect(log).toMatch(new RegExp(`postscreen\\[\\d+\\]: NOQUEUE: reject: RCPT from \\[${escape(RELAY_CLIENT)}\\]:\\d+: 450 4\\.3\\.2 Service currently unavailable`));
    // The second session is smtpd's: one-line banner, PIPELINING offered.
    expect(secondSession.banner).toBe(`220 ${stack.config.hostname} ESMTP`);
    expect(replyTo(secondSession, EHLO)).toMatch(/^250-PIPELINING$/m);
  });

  test("positive control: the same unauthenticated client on 25 gets 250 for a hosted mailbox and an alias", async () => {
    const s = await stack.smtp({
      port: 25,
      source: RELAY_CLIENT,
      steps: [EHLO, `MAIL FROM:<sender@${OUTSIDE_DOMAIN}>`, "RCPT TO:<alice@example.com>", "RCPT TO:<bob@example.com>", "RCPT TO:<alice@example.org>", "RSET", "QUIT"],
    });
    expect(s.banner).toBe(`220 ${stack.config.hostname} ESMTP`);
    expect(replyTo(s, `MAIL FROM:<sender@${OUTSIDE_DOMAIN}>`)).toBe("250 2.1.0 Ok");
    for (const rcpt of ["alice@example.com", "bob@example.com", "alice@example.org"]) expect(rcptReply(s, rcpt)).toBe("250 2.1.5 Ok");
  });

  test(`the battery has at least 20 tricks (${TRICKS.length})`, () => {
    expect(TRICKS.length).toBeGreaterThanOrEqual(20);
    expect(new Set(TRICKS.map((t) => t.name)).size).toBe(TRICKS.length);
  });

  test.each(TRICKS)("port 25, no AUTH: $name: MAIL FROM:<$from> RCPT TO:<$rcpt> is refused", async ({ from, rcpt, refusal }) => {
    const s = await stack.smtp({
      port: 25,
      source: RELAY_CLIENT,
      // DATA too: were RCPT accepted, the message would be queued and the final checks see it.
      steps: [EHLO, `MAIL FROM:<${from}>`, `RCPT TO:<${rcpt}>`, { data: message(from || `mailer-daemon@${OUTSIDE_DOMAIN}`, rcpt, "relay test") }, "QUIT"],
    });
    // The session itself works up to RCPT: smtpd (not postscreen) took it and accepted MAIL.
    expect(s.banner).toBe(`220 ${stack.config.hostname} ESMTP`);
    expect(replyTo(s, EHLO)).toMatch(/^250 /m);
    expect(replyTo(s, `MAIL FROM:<${from}>`)).toBe("250 2.1.0 Ok");
    const reply = rcptReply(s, rcpt);
    expect(reply).toMatch(/^[45]\d\d /);
    expect(reply).toMatch(refusal);
    expect(replyTo(s, "DATA")).toBe("554 5.5.1 Error: no valid recipients");
  });

  test("port 25: an outside recipient next to an accepted hosted one is still refused, and only the hosted one counts", async () => {
    const s = await stack.smtp({
      port: 25,
      source: RELAY_CLIENT,
      steps: [EHLO, `MAIL FROM:<sender@${OUTSIDE_DOMAIN}>`, "RCPT TO:<alice@example.com>", `RCPT TO:<${VICTIM}>`, `RCPT TO:<victim%outside.example@example.com>`, "RSET", "QUIT"],
    });
    expect(rcptReply(s, "alice@example.com")).toBe("250 2.1.5 Ok");
    expect(rcptReply(s, VICTIM)).toMatch(RELAY_DENIED);
    expect(rcptReply(s, "victim%outside.example@example.com")).toMatch(RELAY_DENIED);
  });

  test("port 25: AUTH is refused even after STARTTLS, with a valid password, and relaying stays closed", async () => {
    const auth = `AUTH PLAIN ${Buffer.from(`\0alice@example.com\0${stack.password("alice@example.com")}`).toString("base64")}`;
    const s = await stack.smtp({
      port: 25,
      source: RELAY_CLIENT,
      steps: [EHLO, { starttls: true }, EHLO, auth, `MAIL FROM:<alice@example.com>`, `RCPT TO:<${VICTIM}>`, "QUIT"],
    });
    expect(s.tls).toMatch(/^TLSv1\.[23]$/);
    expect(replyTo(s, auth)).toBe("503 5.5.1 Error: authentication not enabled");
    expect(replyTo(s, "MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok");
    expect(rcptReply(s, VICTIM)).toMatch(RELAY_DENIED);
  });

  test("port 25: XCLIENT cannot make the client look like loopback", async () => {
    const s = await stack.smtp({ port: 25, source: RELAY_CLIENT, steps: [EHLO, "XCLIENT ADDR=127.0.0.1 NAME=localhost", EHLO, `MAIL FROM:<sender@${OUTSIDE_DOMAIN}>`, `RCPT TO:<${VICTIM}>`, "QUIT"] });
    expect(replyTo(s, "XCLIENT ADDR=127.0.0.1 NAME=localhost")).toMatch(/^5\d\d /);
    expect(rcptReply(s, VICTIM)).toMatch(RELAY_DENIED);
  });

  test("port 25 from 127.0.0.1: postscreen lets loopback through, but it cannot relay either", async () => {
    const s = await stack.smtp({
      port: 25,
      source: "127.0.0.1",
      steps: [EHLO, `MAIL FROM:<sender@${OUTSIDE_DOMAIN}>`, `RCPT TO:<${VICTIM}>`, "RCPT TO:<alice@example.com>", "RSET", "MAIL FROM:<alice@example.com>", `RCPT TO:<${VICTIM}>`, `RCPT TO:<victim%outside.example@example.com>`, "QUIT"],
    });
    // No postscreen tests for mynetworks: smtpd's banner right away, and the log says so.
    expect(s.banner).toBe(`220 ${stack.config.hostname} ESMTP`);
    await stack.until("postscreen to allowlist 127.0.0.1", () => /postscreen\[\d+\]: ALLOWLISTED \[127\.0\.0\.1\]:/.test(stack.log("mail")));
    const victims = s.replies.filter((r) => r.sent.startsWith("RCPT TO:<victim"));
    expect(victims).toHaveLength(3);
    for (const r of victims) expect(r.reply).toMatch(RELAY_DENIED);
    expect(rcptReply(s, "alice@example.com")).toBe("250 2.1.5 Ok");
  });

  const SUBMISSION_TRICKS = [VICTIM, "victim%outside.example@example.com", `@example.com:${VICTIM}`, `"${VICTIM}"@example.com`, "outside.example!victim@example.com"];
  const SUBMISSION_PORTS: [string, number, boolean][] = [
    ["587 after STARTTLS", 587, false],
    ["465 (implicit TLS)", 465, true],
  ];

  test.each(SUBMISSION_PORTS)("port %s without AUTH: every relay attempt, and even a hosted recipient, is refused", async (_name, port, implicitTls) => {
    const rcpts = [...SUBMISSION_TRICKS, "alice@example.com"];
    const steps: (string | SmtpStep)[] = [EHLO, ...(implicitTls ? [] : [{ starttls: true }, EHLO]), `MAIL FROM:<alice@example.com>`, ...rcpts.map((r) => `RCPT TO:<${r}>`), "RSET", "QUIT"];
    const s = await stack.smtp({ port, source: SUBMISSION_CLIENT, implicitTls, steps });
    expect(s.tls).toMatch(/^TLSv1\.[23]$/);
    expect(replyTo(s, "MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok");
    for (const rcpt of rcpts) {
      const reply = rcptReply(s, rcpt);
      expect(reply).toMatch(/^[45]\d\d /);
      expect(reply).toMatch(CLIENT_REJECTED);
    }
  });

  test("port 587 without STARTTLS: no MAIL at all", async () => {
    const s = await stack.smtp({ port: 587, source: SUBMISSION_CLIENT, steps: [EHLO, "MAIL FROM:<alice@example.com>", `RCPT TO:<${VICTIM}>`, "QUIT"] });
    expect(replyTo(s, "MAIL FROM:<alice@example.com>")).toBe("530 5.7.0 Must issue a STARTTLS command first");
    expect(rcptReply(s, VICTIM)).toMatch(/^5\d\d /);
  });

  test("port 587 with a wrong password: AUTH fails and relaying stays closed", async () => {
    const auth = `AUTH PLAIN ${Buffer.from("\0alice@example.com\0not the password").toString("base64")}`;
    const s = await stack.smtp({ port: 587, source: BAD_AUTH_CLIENT, steps: [EHLO, { starttls: true }, EHLO, auth, "MAIL FROM:<alice@example.com>", `RCPT TO:<${VICTIM}>`, "QUIT"] });
    expect(replyTo(s, auth)).toMatch(/^535 5\.7\.8 /);
    expect(rcptReply(s, VICTIM)).toMatch(CLIENT_REJECTED);
  });

  test("positive control: an authenticated user on 587 may send to an outside domain (RCPT 250), but not as someone else", async () => {
    const auth = `AUTH PLAIN ${Buffer.from(`\0alice@example.com\0${stack.password("alice@example.com")}`).toString("base64")}`;
    const s = await stack.smtp({
      port: 587,
      source: AUTH_CLIENT,
      steps: [EHLO, { starttls: true }, EHLO, auth, "MAIL FROM:<alice@example.com>", `RCPT TO:<${VICTIM}>`, "RSET", "MAIL FROM:<bob@example.com>", `RCPT TO:<victim2@${OUTSIDE_DOMAIN}>`, "RSET", "QUIT"],
    });
    expect(replyTo(s, auth)).toBe("235 2.7.0 Authentication successful");
    expect(rcptReply(s, VICTIM)).toBe("250 2.1.5 Ok");
    // No DATA was sent: RSET drops the transaction, nothing is queued for the outside.
    expect(rcptReply(s, `victim2@${OUTSIDE_DOMAIN}`)).toMatch(/^553 5\.7\.1 <bob@example\.com>: Sender address rejected: not owned by user alice@example\.com$/);
  });

  test("nothing for an outside domain was queued or delivered, and the refusals are in the log", async () => {
    const hosted = (address: string) => hostedDomains.includes(address.slice(address.lastIndexOf("@") + 1).toLowerCase());
    // postlogd writes asynchronously: wait until the previous test's session is logged as over.
    await stack.until("the last session in the mail log", () => new RegExp(`submission/smtpd\\[\\d+\\]: disconnect from unknown\\[${escape(AUTH_CLIENT)}\\]`).test(stack.log("mail")));
    const log = stack.log("mail");

    const queued = stack.queue().flatMap((m) => m.recipients.map((r) => r.address));
    expect(queued.filter((a) => !hosted(a))).toEqual([]);
    // Postfix's SMTP client never ran: no delivery attempt to any other host.
    expect(log).not.toMatch(/postfix\/(smtp|relay)\[\d+\]/);
    // Every recipient any delivery agent logged is hosted (the battery delivers nothing at all).
    const delivered = [...log.matchAll(/postfix\/\w+\[\d+\]: [0-9A-F]+: to=<([^>]*)>/g)].map((m) => m[1]);
    expect(delivered.filter((a) => !hosted(a))).toEqual([]);
    // The internet client's transactions got a queue id only when a hosted recipient was
    // accepted (the positive controls, which then RSET): none of them reached the queue.
    const ids = [...log.matchAll(new RegExp(`smtpd\\[\\d+\\]: ([0-9A-F]+): client=unknown\\[${escape(RELAY_CLIENT)}\\]`, "g"))].map((m) => m[1]);
    expect(ids.length).toBeGreaterThan(0);
    for (const id of ids) expect(log).not.toMatch(new RegExp(`postfix/(cleanup|qmgr)\\[\\d+\\]: ${id}: `));
    // And the log read is the right one: every relay refusal of the battery is in it.
    const relayDenied = TRICKS.filter((t) => t.refusal === RELAY_DENIED).length;
    expect(count(log, new RegExp(`NOQUEUE: reject: RCPT from unknown\\[${escape(RELAY_CLIENT)}\\]: 554 5\\.7\\.1 .*Relay access denied`))).toBeGreaterThanOrEqual(relayDenied);
  });
});
