/**
 * Outgoing mail through Amazon SES (sesOutbound), run for real (test/support/stack.ts): the
 * stack's Postfix relays through its rendered `ses` transport to a stand-in for SES's SMTP
 * interface (test/support/ses-smtp.mjs) on port 587 of another host, which the stack's DNS gives
 * for email-smtp.<region>.amazonaws.com. The stand-in answers as SES does: STARTTLS first, then
 * AUTH with the SMTP credentials of the stack's IAM key (the password SES derives from the key's
 * secret, computed there independently of the core), then the message.
 *
 * Asserted: a user's submission reaches SES once, over verified TLS, after AUTH with the
 * installed credentials, and not DKIM-signed by the host (SES signs it with the same key,
 * BYODKIM), where the same rspamd with the config without sesOutbound signs; and every way SES can fail the
 * relay (credentials refused, a 554 at MAIL, RCPT or DATA, no STARTTLS, a certificate for
 * another name or from an untrusted CA) keeps the message in the queue, deferred, never bounced
 * and never sent without TLS or to the wrong server, until the cause is gone and the queue is
 * flushed: then it arrives exactly once.
 *
 * One test-only setting: Postfix trusts the stand-in's CA (see beforeAll).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { filterMatches, hostFiles, LOG_METRIC_FILTERS, type MailConfigInput, parseConfig, SES_SMTP_CREDENTIALS_FILE, sesSmtpCredentialsFile, sesSmtpPassword } from "@mailstack/core";
import { SES_IP, SES_LINK_IP, type SesMessage, type SesSession, SesStandIn } from "../support/ses-stand-in";
import { escapeRegExp, header, message, OUTSIDE_DOMAIN, source, TestStack } from "../support/stack";
import { requireRoot, requireTools, TEST_PARAMS, TEST_SES_ACCESS_KEY, testSesSmtpCredentials } from "../support/tools";

requireTools("postconf", "postqueue", "ip", "openssl", "postfix sasl client");
requireRoot("the stack and the SES stand-in run in network namespaces of their own");

const REGION = "eu-west-1";
const ALICE = "alice@example.com";
/** An outside recipient: with sesOutbound, every domain not hosted here leaves through SES. */
const FRIEND = `friend@${OUTSIDE_DOMAIN}`;

const BASE: MailConfigInput = {
  domain: "example.com",
  mailboxes: [
    { address: ALICE, password: "first long test passphrase" },
    { address: "bob@example.com", password: "second long test passphrase" },
  ],
};
const INPUT: MailConfigInput = { ...BASE, sesOutbound: true, sesRegion: REGION };

const BODY = "Minutes of the planning meeting: budget review, hiring timeline, office move, quarterly targets and the customer survey results.\n";

let ses: SesStandIn;
let stack: TestStack;

beforeAll(async () => {
  ses = SesStandIn.prepare(REGION);
  // main.cf's smtp_tls_CAfile (Debian's bundle of public CAs) is the ses transport's only trust
  // store, and no public CA signs for amazonaws.com in a test: the stack trusts the stand-in's CA
  // instead, and nothing else. The transport's own settings (secure, the next hop's name) stay
  // as rendered, so an unverified or misnamed certificate is still refused.
  stack = await TestStack.start(INPUT, { extraRecords: [ses.record], postfixOverrides: { smtp_tls_CAfile: ses.caFile } });
  await ses.start(stack, TEST_SES_ACCESS_KEY);
}, 240000);

afterAll(async () => {
  await ses?.stop();
  await stack?.stop();
});

const authPlain = (user: string) => `AUTH PLAIN ${Buffer.from(`\0${user}\0${stack.password(user)}`).toString("base64")}`;
let nextSource = 40;

/** Messages in alice's mailbox when she last submitted one: a bounce to her would add one. */
let aliceMail = 0;

/** Alice submits a message to FRIEND on 587; returns its subject and queue id. */
async function submit(what: string): Promise<{ subject: string; queueId: string }> {
  const subject = `${what} ${Date.now()}`;
  aliceMail = stack.maildirCount(ALICE);
  const s = await stack.smtp({
    port: 587,
    source: source(nextSource++),
    steps: ["EHLO client.example.net", { starttls: true }, "EHLO client.example.net", authPlain(ALICE), `MAIL FROM:<${ALICE}>`, `RCPT TO:<${FRIEND}>`, { data: message(ALICE, FRIEND, subject, BODY) }, "QUIT"],
  });
  const queued = /\n250 2\.0\.0 Ok: queued as (\w+)/.exec(s.replies.find((r) => r.sent === "DATA")?.reply ?? "");
  if (!queued) throw new Error(`submission refused: ${JSON.stringify(s.replies)}`);
  return { subject, queueId: queued[1] };
}

const withSubject = (subject: string) => (m: { data: string }) => m.data.includes(`Subject: ${subject}\r\n`);

/** Waits until SES has the message, and the queue is empty; it must have arrived exactly once. */
async function arrivedOnce(subject: string): Promise<SesMessage> {
  await stack.until(`SES to receive "${subject}"`, () => ses.messages().some(withSubject(subject)));
  await stack.until("the queue to be empty", () => stack.queue().length === 0);
  const copies = ses.messages().filter(withSubject(subject));
  expect(copies).toHaveLength(1);
  return copies[0];
}

/** Waits until the message is in the deferred queue with a reason, and returns the reason (the tests match it: not "delivery temporarily suspended", left by an earlier failure). */
async function deferred(queueId: string): Promise<string> {
  let reason = "";
  await stack.until(`${queueId} to be deferred`, () => {
    const entry = stack.queue().find((q) => q.queue_id === queueId);
    reason = entry?.recipients[0]?.delay_reason ?? "";
    return entry?.queue_name === "deferred" && reason !== "";
  });
  return reason;
}

/** Mail log lines of one queue id. */
const logOf = (queueId: string) =>
  stack
    .log("mail")
    .split("\n")
    .filter((l) => l.includes(` ${queueId}: `));

/**
 * What a deferral must not have caused: no bounce (no DSN to alice, nothing logged as bounced),
 * and the message not at SES.
 */
function keptNotBounced(queueId: string, subject: string): void {
  expect(logOf(queueId).filter((l) => /status=bounced|sender non-delivery notification/.test(l))).toEqual([]);
  expect(stack.maildirCount(ALICE)).toBe(aliceMail);
  expect(ses.messages().filter(withSubject(subject))).toEqual([]);
}

/** Sessions the stand-in saw since `from` (a count of earlier sessions). */
const sessionsSince = (from: number): SesSession[] => ses.sessions().slice(from);
/** The commands of a session, without arguments; the stand-in's own events, such as "(end of data)", as they are. */
const verbs = (s: SesSession) => s.commands.map((c) => (c.command.startsWith("(") ? c.command : c.command.split(" ")[0].toUpperCase()));

const DKIM_SIGNING = "/etc/rspamd/local.d/dkim_signing.conf";

/** Installs `content` as the stack's dkim_signing.conf and reloads rspamd, as the host's bundle does; returns once only new workers are left. */
async function reloadRspamd(content: string): Promise<void> {
  writeFileSync(stack.host.path(DKIM_SIGNING), content);
  const from = stack.log("rspamd").length;
  stack.exec("kill", ["-HUP", readFileSync(join(stack.root, "run/rspamd/rspamd.pid"), "utf8").trim()]);
  await stack.until("rspamd to reload", () => {
    const log = stack.log("rspamd").slice(from);
    return /rspamd_hup_handler: kill old workers/.test(log) && /rspamd_proxy process \d+ terminated/.test(log);
  });
}

/** The stand-in as SES is (its open connections closed). */
async function sesAsUsual(): Promise<void> {
  await ses.set({ ...TEST_SES_ACCESS_KEY, starttls: "offer", certificate: "valid", refuse: null });
}

/** Replaces the installed SES credentials file (as the sync would) and reloads Postfix. */
async function installCredentials(content: string): Promise<void> {
  writeFileSync(join(stack.paths.runtime, SES_SMTP_CREDENTIALS_FILE), content);
  const reloads = () => stack.log("mail").split("\n").filter((l) => / reload -- version /.test(l)).length;
  const before = reloads();
  const r = stack.postfix("reload");
  if (r.status !== 0) throw new Error(`postfix reload: ${r.stderr}`);
  await stack.until("Postfix to reload", () => reloads() > before);
  // The smtp processes of before the reload notice it and exit; the next one reads the new file.
  await new Promise((r) => setTimeout(r, 1000));
}

describe("the SES stand-in answers as SES's SMTP interface does", () => {
  test("STARTTLS before AUTH and MAIL, a certificate for the endpoint from the test CA, AUTH (PLAIN and LOGIN) before MAIL, the derived credentials only", async () => {
    const { username, password } = testSesSmtpCredentials(REGION);
    const b64 = (text: string) => Buffer.from(text).toString("base64");
    const plain = (user: string, pass: string) => `AUTH PLAIN ${b64(`\0${user}\0${pass}`)}`;
    const session = (steps: Parameters<TestStack["smtp"]>[0]["steps"]) =>
      stack.smtp({ host: SES_IP, port: 587, source: source(30), steps, tls: { ca: readFileSync(ses.caFile, "utf8"), servername: ses.endpoint, rejectUnauthorized: true } });

    const first = await session([
      "EHLO client.example.net",
      plain(username, password),
      `MAIL FROM:<${ALICE}>`,
      { starttls: true },
      "EHLO client.example.net",
      `MAIL FROM:<${ALICE}>`,
      plain(username, "not the password"),
      // Another region's password for the same key, and another key's user name with the right password.
      plain(username, sesSmtpPassword(TEST_SES_ACCESS_KEY.secretAccessKey, "us-east-1")),
      plain("AKIAI44QH8DHBEXAMPLE", password),
      "AUTH LOGIN",
      b64(username),
      b64(password),
      `MAIL FROM:<${ALICE}>`,
      "QUIT",
    ]);
    expect(first.banner).toMatch(/^220 email-smtp\.amazonaws\.com ESMTP/);
    expect(first.tls).toMatch(/^TLSv1\.[23]$/);
    expect(first.replies.map((r) => r.reply.split("\n").pop())).toEqual([
      "250 Ok",
      "530 Must issue a STARTTLS command first",
      "530 Must issue a STARTTLS command first",
      "220 Ready to start TLS",
      "250 Ok",
      "530 Authentication required",
      "535 Authentication Credentials Invalid",
      "535 Authentication Credentials Invalid",
      "535 Authentication Credentials Invalid",
      "334 VXNlcm5hbWU6",
      "334 UGFzc3dvcmQ6",
      "235 Authentication successful.",
      "250 Ok",
      "221 Bye",
    ]);
    // STARTTLS is offered before TLS only; AUTH PLAIN and LOGIN both times.
    expect(first.replies[0].reply).toMatch(/^250-STARTTLS$/m);
    expect(first.replies[4].reply).not.toMatch(/STARTTLS/);
    for (const i of [0, 4]) expect(first.replies[i].reply).toMatch(/^250-AUTH PLAIN LOGIN$/m);

    const second = await session(["EHLO client.example.net", { starttls: true }, "EHLO client.example.net", plain(username, password), "QUIT"]);
    expect(second.replies.map((r) => r.reply.split("\n").pop())).toEqual(["250 Ok", "220 Ready to start TLS", "250 Ok", "235 Authentication successful.", "221 Bye"]);
  });
});

describe("outgoing mail through SES (sesOutbound)", () => {
  test("a message alice submits on 587 to an outside address arrives at SES exactly once, over verified TLS, after AUTH with the installed credentials", async () => {
    // Postfix's SMTP client has Cyrus SASL, whose PLAIN and LOGIN come from libsasl2-modules.
    expect(stack.exec("postconf", ["-A"]).stdout.split("\n")).toContain("cyrus");
    await sesAsUsual();
    const before = ses.sessions().length;
    const { subject, queueId } = await submit("through SES");
    const m = await arrivedOnce(subject);
    expect(m.from).toBe(ALICE);
    expect(m.rcpts).toEqual([FRIEND]);
    expect(m.client).toBe(SES_LINK_IP);
    expect(m.tls?.protocol).toMatch(/^TLSv1\.[23]$/);
    expect(m.auth).toEqual({ mechanism: expect.stringMatching(/^(PLAIN|LOGIN)$/), user: TEST_SES_ACCESS_KEY.accessKeyId, ok: true });
    expect(header(m.data, "Subject")).toEqual([`Subject: ${subject}`]);

    // One session: TLS first, then AUTH, then the message; nothing before TLS but EHLO.
    const sessions = sessionsSince(before);
    expect(sessions).toHaveLength(1);
    expect(verbs(sessions[0])).toEqual(["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "(end of data)", "QUIT"]);
    // Postfix checked the certificate against the endpoint's name, and used its ses transport.
    const log = stack.log("mail");
    expect(log).toMatch(new RegExp(`postfix/ses/smtp\\[\\d+\\]: Verified TLS connection established to ${escapeRegExp(ses.endpoint)}\\[${escapeRegExp(SES_IP)}\\]:587`));
    expect(logOf(queueId).join("\n")).toMatch(
      new RegExp(`postfix/ses/smtp\\[\\d+\\]: ${queueId}: to=<${escapeRegExp(FRIEND)}>, relay=${escapeRegExp(ses.endpoint)}\\[${escapeRegExp(SES_IP)}\\]:587, .* status=sent \\(250 Ok `),
    );
  });

  test("the host does not DKIM-sign it (SES signs with the same key, BYODKIM); with the one rspamd file the config without sesOutbound renders differently, this rspamd signs it", async () => {
    await sesAsUsual();
    const unsigned = await arrivedOnce((await submit("unsigned by the host")).subject);
    expect(header(unsigned.data, "DKIM-Signature")).toEqual([]);

    // Control, on the same daemons: rspamd's files for the same config without sesOutbound
    // differ in dkim_signing.conf alone, and with that file this rspamd signs the same submission.
    const rspamdFiles = (input: MailConfigInput) =>
      new Map(
        hostFiles(parseConfig(input), TEST_PARAMS, stack.host.env)
          .filter((f) => f.path.startsWith(stack.host.path("/etc/rspamd/")))
          .map((f) => [f.path.slice(stack.root.length), f.content]),
      );
    const ours = rspamdFiles(INPUT);
    const without = rspamdFiles(BASE);
    expect([...without.keys()].sort()).toEqual([...ours.keys()].sort());
    expect([...ours.keys()].filter((path) => ours.get(path) !== without.get(path))).toEqual([DKIM_SIGNING]);
    expect(ours.get(DKIM_SIGNING)).toMatch(/^enabled = false;$/m);
    expect(without.get(DKIM_SIGNING)).toMatch(/^enabled = true;$/m);
    expect(readFileSync(stack.host.path(DKIM_SIGNING), "utf8")).toBe(ours.get(DKIM_SIGNING));
    try {
      await reloadRspamd(without.get(DKIM_SIGNING)!);
      const signed = await arrivedOnce((await submit("signed by the host")).subject);
      const signatures = header(signed.data, "DKIM-Signature");
      expect(signatures).toHaveLength(1);
      expect(signatures[0]).toMatch(new RegExp(`\\bd=example\\.com;.*\\bs=${escapeRegExp(stack.config.dkimSelector)};`));
    } finally {
      await reloadRspamd(ours.get(DKIM_SIGNING)!);
    }
  });

  test("credentials SES refuses (535) defer the message, never bounce it; once the right ones are installed and the queue flushed it arrives once", async () => {
    const file = join(stack.paths.runtime, SES_SMTP_CREDENTIALS_FILE);
    const installed = readFileSync(file, "utf8");
    expect(installed).toBe(sesSmtpCredentialsFile(stack.config, testSesSmtpCredentials(REGION)));
    // A key whose secret is not the one SES knows (say, rotated in IAM and not yet on the host).
    await installCredentials(sesSmtpCredentialsFile(stack.config, { username: TEST_SES_ACCESS_KEY.accessKeyId, password: sesSmtpPassword("not the secret of this key", REGION) }));
    await sesAsUsual();
    const before = ses.sessions().length;
    try {
      const { subject, queueId } = await submit("wrong credentials");
      expect(await deferred(queueId)).toMatch(/^SASL authentication failed; server email-smtp\.eu-west-1\.amazonaws\.com\[203\.0\.113\.10\] said: 535 Authentication Credentials Invalid/);
      const sessions = sessionsSince(before);
      expect(sessions.length).toBeGreaterThan(0);
      for (const s of sessions) {
        expect(s.auth).toEqual({ mechanism: expect.any(String), user: TEST_SES_ACCESS_KEY.accessKeyId, ok: false });
        expect(verbs(s)).not.toContain("MAIL");
      }
      keptNotBounced(queueId, subject);
      // A relay refusing the stack's key is no one guessing passwords: monitoring's failed-login
      // filter counts smtpd's lines and not this one.
      const refusal = logOf(queueId).filter((l) => l.includes("SASL authentication failed"));
      expect(refusal.length).toBeGreaterThan(0);
      for (const line of refusal) expect(filterMatches(LOG_METRIC_FILTERS.smtpAuthFailures, line)).toBe(false);

      await installCredentials(installed);
      stack.flushQueue();
      const m = await arrivedOnce(subject);
      expect(m.auth?.ok).toBe(true);
      expect(logOf(queueId).filter((l) => /status=bounced|sender non-delivery notification/.test(l))).toEqual([]);
    } finally {
      writeFileSync(file, installed);
    }
  });

  test.each([
    ["MAIL", "554 Sending paused for this account. For more information, please check the AWS console."],
    ["RCPT", "554 Message rejected: Email address is not verified. The following identities failed the check in region EU-WEST-1: friend@outside.example"],
    ["DATA", "554 Message rejected: Email address is not verified. The following identities failed the check in region EU-WEST-1: alice@example.com"],
  ] as const)("SES refusing at %s with 554 defers the message (soft bounce), never bounces it; when SES accepts again and the queue is flushed it arrives once", async (at, reply) => {
    await ses.set({ ...TEST_SES_ACCESS_KEY, refuse: { at, reply } });
    const before = ses.sessions().length;
    const { subject, queueId } = await submit(`refused at ${at}`);
    expect(await deferred(queueId)).toContain(`said: ${reply}`);
    // It was SES's refusal of this message: after TLS and AUTH, at that command.
    const refusal = sessionsSince(before).find((s) => s.commands.some((c) => c.reply === reply));
    expect(refusal?.tls).not.toBeNull();
    expect(refusal?.auth?.ok).toBe(true);
    keptNotBounced(queueId, subject);
    // soft_bounce turned SES's permanent refusal into a deferral, and the log says so.
    expect(logOf(queueId).join("\n")).toMatch(/ status=SOFTBOUNCE \(host /);

    await sesAsUsual();
    stack.flushQueue();
    await arrivedOnce(subject);
  });

  test.each([
    ["does not offer STARTTLS", "none" as const, /^TLS is required, but was not offered by host email-smtp\.eu-west-1\.amazonaws\.com\[203\.0\.113\.10\]$/],
    ["refuses STARTTLS (454)", "refuse" as const, /^TLS is required, but host email-smtp\.eu-west-1\.amazonaws\.com\[203\.0\.113\.10\] refused to start TLS: 454 4\.7\.0 TLS not available/],
  ])("a relay that %s gets nothing in plaintext: no AUTH, no MAIL; the message waits and arrives once TLS is back", async (_what, starttls, reason) => {
    await ses.set({ ...TEST_SES_ACCESS_KEY, starttls });
    const before = ses.sessions().length;
    const { subject, queueId } = await submit(`starttls ${starttls}`);
    expect(await deferred(queueId)).toMatch(reason);
    const sessions = sessionsSince(before);
    expect(sessions.length).toBeGreaterThan(0);
    for (const s of sessions) {
      expect(s.tls).toBeNull();
      expect(verbs(s).filter((v) => !["EHLO", "STARTTLS", "QUIT"].includes(v))).toEqual([]);
    }
    keptNotBounced(queueId, subject);

    await sesAsUsual();
    stack.flushQueue();
    await arrivedOnce(subject);
  });

  test.each([
    ["for another name (of the trusted CA)", "wrong-name" as const],
    ["for the endpoint's name from a CA Postfix does not trust", "untrusted" as const],
  ])("a certificate %s: the session ends after the handshake, with no AUTH and no MAIL; the message waits and arrives once the certificate is right", async (_what, certificate) => {
    await ses.set({ ...TEST_SES_ACCESS_KEY, certificate });
    const before = ses.sessions().length;
    const { subject, queueId } = await submit(`certificate ${certificate}`);
    expect(await deferred(queueId)).toMatch(/Server certificate not verified/);
    const sessions = sessionsSince(before);
    expect(sessions.length).toBeGreaterThan(0);
    for (const s of sessions) {
      expect(s.auth).toBeNull();
      expect(verbs(s).filter((v) => !["EHLO", "STARTTLS", "QUIT", "(TLS handshake)"].includes(v))).toEqual([]);
    }
    keptNotBounced(queueId, subject);

    await sesAsUsual();
    stack.flushQueue();
    await arrivedOnce(subject);
  });
});
