/**
 * The rendered host, run for real: Postfix, Dovecot, rspamd, redis and unbound on the
 * core's files (test/support/stack.ts), driven by real clients over the network.
 */
import { type MailConfigInput, txtValue } from "@mailstack/core";
import { dkimVerify } from "mailauth/lib/dkim/verify";
import { header, LISTED_IP, message, NO_DMARC_DOMAIN, OUTSIDE_DOMAIN, OUTSIDE_IP, sleep, source, TestStack } from "../support/stack";
import { requireRoot, requireTools } from "../support/tools";

requireTools("postconf", "doveconf", "doveadm", "sievec", "rspamadm", "ip", "openssl");
requireRoot("the stack runs in a network namespace of its own");

const INPUT: MailConfigInput = {
  domain: "example.com",
  extraDomains: ["example.org"],
  mailboxes: [
    { address: "alice@example.com", password: "first long test passphrase", aliases: ["alice@example.org"] },
    { address: "bob@example.com", password: "second long test passphrase" },
    { address: "carol@example.com", password: "third long test passphrase", quota: "1M" },
  ],
  aliases: [{ address: "info@example.com", to: ["alice@example.com", "bob@example.com"] }],
};

// Long enough for rspamd's Bayes classifier, which skips messages of fewer than 11 tokens.
const BODY = "Minutes of the planning meeting: budget review, hiring timeline, office move, quarterly targets and the customer survey results.\n";
const GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

let stack: TestStack;
// Each test's clients get addresses of their own: Dovecot delays a source after a failed login.
let nextSource = 10;
const newSource = () => source(nextSource++);

beforeAll(async () => {
  stack = await TestStack.start(INPUT);
}, 240000);
afterAll(() => stack?.stop());

const auth = (user: string) => `AUTH PLAIN ${Buffer.from(`\0${user}\0${stack.password(user)}`).toString("base64")}`;
/** The code of a reply's last line (after DATA, the verdict on the message). */
const code = (reply: string | undefined) => Number((reply ?? "").split("\n").pop()!.slice(0, 3));


/** Submits one message on 587 (STARTTLS, AUTH) and returns every reply. */
async function submit(user: string, from: string, to: string[], data: string, port = 587) {
  const implicitTls = port === 465;
  return stack.smtp({
    port,
    source: newSource(),
    implicitTls,
    steps: [
      "EHLO client.example.net",
      ...(implicitTls ? [] : [{ starttls: true }, "EHLO client.example.net"]),
      auth(user),
      `MAIL FROM:<${from}>`,
      ...to.map((t) => `RCPT TO:<${t}>`),
      { data },
      "QUIT",
    ],
  });
}

/**
 * postscreen tests a new client on port 25, then (deep protocol tests) asks it to come back:
 * one session per source that ends in "450 4.3.2" at RCPT. Later sessions go to smtpd.
 */
const passed = new Set<string>();
async function passPostscreen(from: string): Promise<void> {
  if (passed.has(from)) return;
  const first = await stack.smtp({ port: 25, source: from, steps: ["EHLO mx.outside.example", `MAIL FROM:<someone@${OUTSIDE_DOMAIN}>`, "RCPT TO:<bob@example.com>", "QUIT"] });
  // postscreen's multi-line greeting catches clients that talk too early.
  expect(first.banner).toMatch(/^220-[^\n]*\n220 /);
  expect(first.replies[2].reply).toMatch(/^450 4\.3\.2 /);
  passed.add(from);
}

/**
 * Sends one message to port 25 as another mail server would (no AUTH), by default from the
 * outside domain's own server, whose reverse DNS and SPF are in order.
 */
async function inbound(envelopeFrom: string, to: string[], data: string, from = OUTSIDE_IP) {
  await passPostscreen(from);
  return stack.smtp({
    port: 25,
    source: from,
    steps: ["EHLO mx.outside.example", `MAIL FROM:<${envelopeFrom}>`, ...to.map((t) => `RCPT TO:<${t}>`), { data }, "QUIT"],
  });
}

/** DNS answers from the records the core produced, in the shape of dns.promises.resolve. */
function resolver(records = stack.records) {
  return async (name: string, type: string) => {
    const found = records.filter((r) => r.name === name.replace(/\.$/, "") && r.type === type);
    if (found.length === 0) throw Object.assign(new Error(`no ${type} for ${name}`), { code: "ENOTFOUND" });
    if (type === "TXT") return found.map((r) => [txtValue(r.content)]);
    if (type === "MX") return found.map((r) => ({ exchange: r.content, priority: r.priority }));
    return found.map((r) => r.content);
  };
}

describe("submission on 587 and 465", () => {
  test("587 offers STARTTLS and no AUTH before it, AUTH after it", async () => {
    const s = await stack.smtp({ port: 587, source: newSource(), steps: ["EHLO client.example.net", { starttls: true }, "EHLO client.example.net", "QUIT"] });
    expect(s.replies[0].reply).toMatch(/^250-/);
    expect(s.replies[0].reply).toContain("STARTTLS");
    expect(s.replies[0].reply).not.toMatch(/AUTH/);
    expect(s.tls).toMatch(/^TLSv1\.[23]$/);
    expect(s.replies[2].reply).toMatch(/^250-[\s\S]*AUTH PLAIN LOGIN/);
  });

  test("without STARTTLS, AUTH and MAIL are refused", async () => {
    const s = await stack.smtp({ port: 587, source: newSource(), steps: ["EHLO client.example.net", auth("alice@example.com"), "MAIL FROM:<alice@example.com>", "QUIT"] });
    expect(code(s.replies[1].reply)).toBeGreaterThanOrEqual(500);
    expect(code(s.replies[2].reply)).toBeGreaterThanOrEqual(500);
  });

  test("a message submitted on 587 is DKIM-signed, delivered over LMTP and read back over IMAPS", async () => {
    const subject = `submission ${Date.now()}`;
    const s = await submit("alice@example.com", "alice@example.com", ["bob@example.com"], message("alice@example.com", "bob@example.com", subject, BODY));
    expect(s.replies.map((r) => code(r.reply))).toEqual([250, 220, 250, 235, 250, 250, 250, 221]);
    const queueId = s.replies[6].reply.match(/queued as (\w+)/)?.[1];
    expect(queueId).toBeDefined();
    await stack.until("LMTP delivery", () => new RegExp(`${queueId}: to=<bob@example.com>, relay=[^,]*dovecot-lmtp\\][^\\n]*status=sent`).test(stack.log("mail")));

    const inbox = await stack.messages("bob@example.com");
    const got = inbox.find((m) => m.source.includes(`Subject: ${subject}`));
    expect(got).toBeDefined();
    const signatures = header(got!.source, "DKIM-Signature");
    expect(signatures).toHaveLength(1);
    expect(signatures[0]).toMatch(/\bd=example\.com;/);
    expect(signatures[0]).toMatch(/\bs=mail;/);

    // An independent verifier, with the DKIM TXT record exactly as the core publishes it.
    const verdict = await dkimVerify(got!.source, { resolver: resolver() });
    expect(verdict.results.map((r: any) => r.status.result)).toEqual(["pass"]);
    // The same verifier rejects the message once its body is altered.
    const altered = got!.source.replace("budget review", "budget rev1ew");
    const [broken] = (await dkimVerify(altered, { resolver: resolver() })).results;
    expect(broken.status).toMatchObject({ result: "neutral", comment: "body hash did not verify" });
  });

  test("465 (implicit TLS) accepts authenticated submission too", async () => {
    const s = await submit("alice@example.com", "alice@example.com", ["bob@example.com"], message("alice@example.com", "bob@example.com", "over 465", BODY), 465);
    expect(s.tls).toMatch(/^TLSv1\.[23]$/);
    expect(s.replies.map((r) => code(r.reply))).toEqual([250, 235, 250, 250, 250, 221]);
  });

  test("a wrong password is refused", async () => {
    const bad = `AUTH PLAIN ${Buffer.from("\0alice@example.com\0not the password").toString("base64")}`;
    const s = await stack.smtp({
      port: 587,
      source: newSource(),
      steps: ["EHLO client.example.net", { starttls: true }, "EHLO client.example.net", bad, "MAIL FROM:<alice@example.com>", "RCPT TO:<bob@example.com>"],
    });
    expect(s.replies[3].reply).toMatch(/^535 /);
    // Restrictions are applied at RCPT (smtpd_delay_reject), where the client is refused.
    expect(s.replies[5].reply).toMatch(/^554 5\.7\.1 .*Client host rejected: Access denied/);
  });
});

describe("sender addresses", () => {
  const attempt = async (user: string, from: string) => {
    const s = await stack.smtp({
      port: 587,
      source: newSource(),
      steps: ["EHLO client.example.net", { starttls: true }, "EHLO client.example.net", auth(user), `MAIL FROM:<${from}>`, "RCPT TO:<bob@example.com>", "QUIT"],
    });
    expect(s.replies[3].reply).toMatch(/^235 /);
    return s.replies[5].reply;
  };

  test("an authenticated user cannot send as another mailbox", async () => {
    expect(await attempt("alice@example.com", "bob@example.com")).toMatch(/^553 5\.7\.1 .*not owned by user alice@example\.com/);
    expect(await attempt("bob@example.com", "alice@example.com")).toMatch(/^553 5\.7\.1 /);
    expect(await attempt("carol@example.com", "info@example.com")).toMatch(/^553 5\.7\.1 /);
  });

  test("nor as an address of a hosted domain that does not exist, nor of another domain", async () => {
    expect(await attempt("alice@example.com", "nobody@example.com")).toMatch(/^553 5\.7\.1 /);
    expect(await attempt("alice@example.com", `ceo@${OUTSIDE_DOMAIN}`)).toMatch(/^553 5\.7\.1 /);
    expect(await attempt("alice@example.com", "")).toMatch(/^553 5\.7\.1 |^5/);
  });

  test("a user may send as their own address, their mailbox aliases and group aliases they receive", async () => {
    expect(await attempt("alice@example.com", "alice@example.com")).toMatch(/^250 /);
    expect(await attempt("alice@example.com", "alice@example.org")).toMatch(/^250 /);
    expect(await attempt("bob@example.com", "info@example.com")).toMatch(/^250 /);
  });
});

describe("inbound mail on port 25", () => {
  test("postscreen drops a client that talks before the greeting", async () => {
    const from = newSource();
    const s = await stack.smtp({ port: 25, source: from, pregreet: "EHLO spambot.example\r\n", steps: ["MAIL FROM:<x@spambot.example>", "RCPT TO:<bob@example.com>"] });
    // postscreen answers in its own name, and never lets the client reach smtpd.
    expect(s.replies.map((r) => r.reply).join("\n")).toMatch(/^5\d\d /m);
    expect(s.replies.map((r) => r.reply).join("\n")).not.toMatch(/^250 2\.1\.5/m);
    await stack.until("the PREGREET log line", () => new RegExp(`PREGREET \\d+ after [\\d.]+ from \\[${from.replace(/\./g, "\\.")}\\]`).test(stack.log("mail")));
  });

  test("postscreen refuses a client Spamhaus lists, asking the local resolver", async () => {
    const s = await stack.smtp({ port: 25, source: LISTED_IP, steps: ["EHLO mx.listed.example", `MAIL FROM:<a@${OUTSIDE_DOMAIN}>`, "RCPT TO:<bob@example.com>", "QUIT"] });
    expect(s.replies[2].reply).toMatch(/^550 5\.7\.1 Service unavailable; client \[198\.51\.100\.66\] blocked using zen\.spamhaus\.org/);
    await stack.until("the DNSBL log line", () => /DNSBL rank 3 for \[198\.51\.100\.66\]/.test(stack.log("mail")));
  });

  test("SMTP smuggling: a bare-LF end of data inside a message does not start a second one", async () => {
    const subject = `smuggle ${Date.now()}`;
    await passPostscreen(OUTSIDE_IP);
    const before = stack.maildirCount("bob@example.com");
    const smuggled = `MAIL FROM:<ceo@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nFrom: ceo@example.com\r\nSubject: smuggled\r\n\r\nsmuggled\r\n`;
    const s = await stack.smtp({
      port: 25,
      source: OUTSIDE_IP,
      steps: [
        "EHLO mx.outside.example",
        `MAIL FROM:<sender@${OUTSIDE_DOMAIN}>`,
        "RCPT TO:<bob@example.com>",
        "DATA",
        { raw: `From: sender@${OUTSIDE_DOMAIN}\r\nTo: bob@example.com\r\nSubject: ${subject}\r\n\r\n${BODY}\n.\r\n${smuggled}.\r\n` },
        "QUIT",
      ],
    });
    expect(s.replies[3].reply).toMatch(/^354 /);
    expect(s.replies[4].reply).toMatch(/^250 2\.0\.0 Ok: queued/);
    expect(s.replies[5].reply).toMatch(/^221 /);
    await stack.until("delivery", () => stack.maildirCount("bob@example.com") === before + 1);
    await sleep(1000);
    // One message, with the would-be second one inside it as text.
    expect(stack.maildirCount("bob@example.com")).toBe(before + 1);
    const got = (await stack.messages("bob@example.com")).find((m) => m.source.includes(subject))!;
    expect(got.source).toContain("Subject: smuggled");
    expect((await stack.messages("bob@example.com")).filter((m) => /^Subject: smuggled$/m.test(m.source.split(/\r?\n\r?\n/)[0]))).toEqual([]);
  });

  test("a message larger than messageSizeLimitMiB is refused when announced", async () => {
    await passPostscreen(OUTSIDE_IP);
    const limit = stack.config.messageSizeLimitMiB * 1024 * 1024;
    const s = await stack.smtp({ port: 25, source: OUTSIDE_IP, steps: ["EHLO mx.outside.example", `MAIL FROM:<sender@${OUTSIDE_DOMAIN}> SIZE=${limit + 1}`, `MAIL FROM:<sender@${OUTSIDE_DOMAIN}> SIZE=${limit}`, "QUIT"] });
    expect(s.replies[1].reply).toMatch(/^552 5\.3\.4 Message size exceeds fixed limit/);
    expect(s.replies[2].reply).toMatch(/^250 /);
  });

  test("GTUBE is rejected at DATA; a clean message from the same client is delivered", async () => {
    const before = stack.maildirCount("bob@example.com");
    const spam = await inbound(`sender@${OUTSIDE_DOMAIN}`, ["bob@example.com"], message(`sender@${OUTSIDE_DOMAIN}`, "bob@example.com", "gtube", `${GTUBE}\n`));
    expect(spam.replies[3].reply).toMatch(/\n554 5\.7\.1 Gtube pattern/);
    const clean = await inbound(`sender@${OUTSIDE_DOMAIN}`, ["bob@example.com"], message(`sender@${OUTSIDE_DOMAIN}`, "bob@example.com", "clean", BODY));
    expect(clean.replies[3].reply).toMatch(/\n250 2\.0\.0 Ok: queued/);
    await stack.until("the clean message in bob's Maildir", () => stack.maildirCount("bob@example.com") === before + 1);
    expect(stack.queue()).toEqual([]);
  });

  test("mail rspamd marks as spam is delivered into Junk, not the inbox", async () => {
    // rspamd's test pattern for its "add header" action, as GTUBE is for "reject".
    const marked = GTUBE.replace(/^X/, "Y");
    const subject = `marked ${Date.now()}`;
    const s = await inbound(`sender@${OUTSIDE_DOMAIN}`, ["bob@example.com"], message(`sender@${OUTSIDE_DOMAIN}`, "bob@example.com", subject, `${marked}\n`));
    expect(s.replies[3].reply).toMatch(/\n250 /);
    await stack.until("delivery into Junk", async () => (await stack.messages("bob@example.com", "Junk")).some((m) => m.source.includes(subject)));
    const junk = (await stack.messages("bob@example.com", "Junk")).find((m) => m.source.includes(subject))!;
    expect(header(junk.source, "X-Spam")).toEqual(["X-Spam: Yes"]);
    expect((await stack.messages("bob@example.com")).some((m) => m.source.includes(subject))).toBe(false);
  });

  test("rspamd checks SPF and DMARC on inbound mail: a pass is recorded, a forgery of a p=reject domain is refused", async () => {
    const subject = `spf ${Date.now()}`;
    const good = await inbound(`news@${OUTSIDE_DOMAIN}`, ["bob@example.com"], message(`news@${OUTSIDE_DOMAIN}`, "bob@example.com", subject, BODY));
    expect(good.replies[3].reply).toMatch(/\n250 /);
    await stack.until("delivery", async () => (await stack.messages("bob@example.com")).some((m) => m.source.includes(subject)));
    const got = (await stack.messages("bob@example.com")).find((m) => m.source.includes(subject))!;
    const results = header(got.source, "Authentication-Results").join("\n");
    expect(results).toMatch(/spf=pass \([^)]*designates 198\.51\.100\.20 as permitted sender\) smtp\.mailfrom=news@outside\.example/);
    expect(results).toMatch(/dmarc=pass \(policy=reject\) header\.from=outside\.example/);

    // The same domain from a server its SPF does not name, with no DKIM signature.
    const forged = await inbound(`news@${OUTSIDE_DOMAIN}`, ["bob@example.com"], message(`news@${OUTSIDE_DOMAIN}`, "bob@example.com", `${subject} forged`, BODY), newSource());
    expect(forged.replies[3].reply).toMatch(/\n5\d\d 5\.7\.1 /);
    expect(stack.log("rspamd")).toMatch(/DMARC_POLICY_REJECT/);
  });

  test("an unknown server with failing SPF and no reverse DNS is greylisted, not accepted at once", async () => {
    const s = await inbound(`someone@${NO_DMARC_DOMAIN}`, ["bob@example.com"], message(`someone@${NO_DMARC_DOMAIN}`, "bob@example.com", "greylist", BODY), newSource());
    expect(s.replies[3].reply).toMatch(/\n451 4\.7\.1 Try again later/);
  });

  test("mail for an unknown user or an unhosted domain is refused at RCPT", async () => {
    const from = newSource();
    await passPostscreen(from);
    const s = await stack.smtp({
      port: 25,
      source: from,
      steps: ["EHLO mx.outside.example", `MAIL FROM:<a@${OUTSIDE_DOMAIN}>`, "RCPT TO:<nobody@example.com>", "RCPT TO:<x@elsewhere.example>", "RCPT TO:<info@example.com>", "QUIT"],
    });
    expect(s.replies[2].reply).toMatch(/^550 5\.1\.1 /);
    expect(s.replies[3].reply).toMatch(/^554 5\.7\.1 .*Relay access denied|^45\d /);
    expect(s.replies[4].reply).toMatch(/^250 /);
  });
});

describe("durability and quotas", () => {
  test("with Dovecot stopped, accepted mail waits in the queue and every message arrives once it is back", async () => {
    const before = stack.maildirCount("bob@example.com");
    await stack.stopDovecot();
    try {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const s = await inbound(`sender@${OUTSIDE_DOMAIN}`, ["bob@example.com"], message(`sender@${OUTSIDE_DOMAIN}`, "bob@example.com", `queued ${i}`, BODY));
        const id = s.replies[3].reply.match(/queued as (\w+)/)?.[1];
        expect(id).toBeDefined();
        ids.push(id!);
      }
      await stack.until("five deferred messages", () => stack.queue().filter((q) => ids.includes(q.queue_id) && q.queue_name === "deferred").length === 5);
      expect(stack.maildirCount("bob@example.com")).toBe(before);
    } finally {
      await stack.startDovecot();
    }
    stack.flushQueue();
    await stack.until("the queue to drain into bob's Maildir", () => stack.queue().length === 0 && stack.maildirCount("bob@example.com") === before + 5, 60000);
    await sleep(1000);
    // Exactly five: nothing lost, nothing delivered twice.
    expect(stack.maildirCount("bob@example.com")).toBe(before + 5);
    const subjects = (await stack.messages("bob@example.com")).map((m) => m.source.match(/^Subject: (queued \d)$/m)?.[1]).filter(Boolean);
    expect(subjects.sort()).toEqual(["queued 0", "queued 1", "queued 2", "queued 3", "queued 4"]);
  });

  test("a mailbox over its quota is refused at RCPT; other recipients still get the message, and nothing bounces", async () => {
    // 1 MiB quota; Dovecot's 10% grace lets one message take the mailbox over it.
    const filler = message(`sender@${OUTSIDE_DOMAIN}`, "carol@example.com", "large", `${"0123456789abcdef".repeat(4)}\n`.repeat(16800));
    const first = await inbound(`sender@${OUTSIDE_DOMAIN}`, ["carol@example.com"], filler);
    expect(first.replies[3].reply).toMatch(/\n250 /);
    await stack.until("carol's mailbox to fill", () => /STORAGE\s+\d+\s+1024\s+\d+/.test(stack.doveadm("quota", "get", "-u", "carol@example.com").stdout) && stack.maildirCount("carol@example.com") === 1);
    const usage = stack.doveadm("quota", "get", "-u", "carol@example.com").stdout;
    expect(Number(usage.match(/STORAGE\s+(\d+)\s+1024/)?.[1])).toBeGreaterThan(1024);

    const s = await stack.smtp({
      port: 25,
      source: OUTSIDE_IP,
      steps: ["EHLO mx.outside.example", `MAIL FROM:<sender@${OUTSIDE_DOMAIN}>`, "RCPT TO:<carol@example.com>", "RCPT TO:<alice@example.com>", { data: message(`sender@${OUTSIDE_DOMAIN}`, "carol@example.com", "one more", BODY) }, "QUIT"],
    });
    expect(s.replies[2].reply).toMatch(/^552 5\.2\.2 .*Mailbox is full/);
    expect(s.replies[3].reply).toMatch(/^250 /);
    expect(s.replies[4].reply).toMatch(/\n250 /);
    await stack.until("the queue to empty", () => stack.queue().length === 0);
    expect(stack.maildirCount("carol@example.com")).toBe(1);
    expect(stack.log("mail")).not.toMatch(/to=<sender@outside\.example>/);
    expect(stack.log("mail")).not.toMatch(/status=bounced/);
  });
});

describe("Bayes learning from the Junk folder (IMAPSieve)", () => {
  // rspamd's statistics output is refreshed on a timer; its log says at once what it learned.
  const learned = (cls: "spam" | "ham", messageId: string) => stack.log("rspamd").includes(`learned message as ${cls}: ${messageId}`);

  test("moving a message into Junk teaches rspamd spam; moving it back teaches ham; deleting it from Junk teaches nothing", async () => {
    const subject = `bayes ${Date.now()}`;
    const data = message("alice@example.com", "bob@example.com", subject, BODY.repeat(3));
    const messageId = data.match(/^Message-ID: <(.*)>$/m)![1];
    const s = await submit("alice@example.com", "alice@example.com", ["bob@example.com"], data);
    expect(s.replies[6].reply).toMatch(/\n250 /);
    await stack.until("delivery", async () => (await stack.messages("bob@example.com")).some((m) => m.source.includes(subject)));
    expect(learned("spam", messageId)).toBe(false);

    const uid = (await stack.messages("bob@example.com")).find((m) => m.source.includes(subject))!.uid;
    const user = { user: "bob@example.com", pass: stack.password("bob@example.com"), source: newSource() };
    // As a mail client does, look at the folders first: Dovecot creates its auto folders then.
    const moved = await stack.imap({ ...user, actions: [{ status: "Junk" }, { status: "Trash" }, { move: ["INBOX", uid, "Junk"] }] });
    expect(moved.results?.[2]).toMatchObject({ path: "INBOX", destination: "Junk" });
    await stack.until("rspamd to learn spam", () => learned("spam", messageId));
    expect(learned("ham", messageId)).toBe(false);

    const inJunk = (await stack.messages("bob@example.com", "Junk")).find((m) => m.source.includes(subject))!;
    expect(await stack.imap({ ...user, actions: [{ move: ["Junk", inJunk.uid, "INBOX"] }] })).toMatchObject({ results: [{ destination: "INBOX" }] });
    await stack.until("rspamd to relearn it as ham", () => learned("ham", messageId));

    // Back into Junk (spam again), then into Trash: that says nothing about it being ham.
    const again = (await stack.messages("bob@example.com")).find((m) => m.source.includes(subject))!;
    await stack.imap({ ...user, actions: [{ move: ["INBOX", again.uid, "Junk"] }] });
    await stack.until("the second spam lesson", () => stack.log("rspamd").split(`learned message as spam: ${messageId}`).length === 3);
    const junked = (await stack.messages("bob@example.com", "Junk")).find((m) => m.source.includes(subject))!;
    expect(await stack.imap({ ...user, actions: [{ move: ["Junk", junked.uid, "Trash"] }] })).toMatchObject({ results: [{ destination: "Trash" }] });
    await sleep(3000);
    expect(stack.log("rspamd").split(`learned message as ham: ${messageId}`).length).toBe(2);
    expect(stack.log("dovecot")).not.toMatch(/sieve.*(error|failed)/i);
  });
});

describe("the daemons' own checks on the rendered files", () => {
  test("postfix check is silent and Postfix logged no warning", () => {
    const r = stack.postfix("check");
    expect({ status: r.status, output: r.stdout + r.stderr }).toEqual({ status: 0, output: "" });
    const warnings = stack
      .log("mail")
      .split("\n")
      .filter((l) => /(warning|fatal|panic):/.test(l))
      // Expected by the tests above: refused logins and the pregreeting client.
      .filter((l) => !/SASL (PLAIN|LOGIN) authentication failed|non-SMTP command/.test(l))
      // While the Dovecot test stops it on purpose, its quota-status socket is gone.
      .filter((l) => !/private\/quota-status: Connection refused/.test(l));
    expect(warnings).toEqual([]);
  });

  test("doveconf -n prints the configuration without warnings, and Dovecot logged no error", () => {
    const r = stack.exec("doveconf", ["-c", stack.dovecotConfig, "-n"]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    const problems = stack
      .log("dovecot")
      .split("\n")
      .filter((l) => /(Warning|Error|Fatal|Panic):/.test(l))
      .filter((l) => !/auth failed|Password mismatch|Connection closed/.test(l))
      // The stop of the Dovecot test.
      .filter((l) => !/master: Warning: Killed with signal 15/.test(l));
    expect(problems).toEqual([]);
  });

  test("rspamadm configtest accepts the running configuration", () => {
    const r = stack.exec("rspamadm", [`--var=LOCAL_CONFDIR=${stack.host.path("/etc/rspamd")}`, "configtest", "-c", "/etc/rspamd/rspamd.conf"]);
    expect(r.stdout.trim().split("\n").pop()).toBe("syntax OK");
    expect(r.status).toBe(0);
  });
});
