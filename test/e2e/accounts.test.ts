/**
 * Accounts on a running host: a mailbox added, disabled and enabled again, a catch-all and
 * plus addressing. Every change is a changed configuration applied as a `pulumi up` reaches the
 * host: the core renders the runtime files, and the real mailstack-sync takes them from fake
 * SSM and S3 endpoints into the running stack's runtime directory, reloads the units its table
 * names (Postfix and Dovecot here) and ends the sessions of users it drops (doveadm kick). The
 * host bundle is never touched.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { hostFiles, type MailConfigInput, parseConfig } from "@mailstack/core";
import { runtimeSync } from "../support/runtime-sync";
import { message, OUTSIDE_DOMAIN, source, TestStack } from "../support/stack";
import { requireRoot, requireTools, TEST_PARAMS } from "../support/tools";

requireTools("postconf", "doveconf", "doveadm", "sievec", "rspamadm", "ip", "openssl", "python3", "boto3");
requireRoot("the stack runs in a network namespace of its own");

const PASSWORDS: Record<string, string> = {
  "alice@example.com": "first long test passphrase",
  "bob@example.com": "second long test passphrase",
  "dave@example.org": "third long test passphrase",
  "carol@example.com": "fourth long test passphrase",
};
const mailbox = (address: string, extra: Partial<MailConfigInput["mailboxes"][number]> = {}) => ({ address, password: PASSWORDS[address], ...extra });

/** What the host starts with: example.org has a catch-all (bob), example.com none. */
const START: MailConfigInput = {
  domain: "example.com",
  extraDomains: ["example.org"],
  mailboxes: [mailbox("alice@example.com"), mailbox("bob@example.com"), mailbox("dave@example.org")],
  aliases: [{ address: "info@example.com", to: ["alice@example.com"] }],
  catchAll: { "example.org": "bob@example.com" },
};
/** Carol added, with her own alias in the catch-all's domain, and in a team alias with bob. */
const WITH_CAROL: MailConfigInput = {
  ...START,
  mailboxes: [...START.mailboxes, mailbox("carol@example.com", { aliases: ["carol@example.org"] })],
  aliases: [...START.aliases!, { address: "team@example.com", to: ["carol@example.com", "bob@example.com"] }],
};
const REPLY = "Carol has left; write to team@example.com";
/** Carol disabled: nothing else changes. */
const CAROL_DISABLED: MailConfigInput = {
  ...WITH_CAROL,
  mailboxes: [...START.mailboxes, mailbox("carol@example.com", { aliases: ["carol@example.org"], enabled: false, disabledReply: REPLY })],
};

let stack: TestStack;
const { apply: applyConfig } = runtimeSync(() => stack);
let nextSource = 10;
const newSource = () => source(nextSource++);

beforeAll(async () => {
  stack = await TestStack.start(START);
}, 240000);
afterAll(async () => {
  await stack?.stop();
});

const code = (reply: string | undefined) => Number((reply ?? "").split("\n").pop()!.slice(0, 3));
const auth = (user: string) => `AUTH PLAIN ${Buffer.from(`\0${user}\0${PASSWORDS[user]}`).toString("base64")}`;

/** One submission session on 587: STARTTLS, AUTH as `user`, then `steps`; every reply from AUTH on. */
async function submission(user: string, steps: (string | { data: string })[]): Promise<string[]> {
  const s = await stack.smtp({ port: 587, source: newSource(), steps: ["EHLO client.example.net", { starttls: true }, "EHLO client.example.net", auth(user), ...steps, "QUIT"] });
  return s.replies.slice(3).map((r) => r.reply);
}

/** Sends one message from outside to `to`, which must be accepted; returns its subject. */
async function deliver(to: string, tag: string): Promise<string> {
  const subject = `${tag} ${Date.now()} ${nextSource}`;
  const replies = await stack.inbound([to], message(`someone@${OUTSIDE_DOMAIN}`, to, subject));
  expect({ to, replies: replies.map(code) }).toEqual({ to, replies: [250, 250, 250, 221] });
  return subject;
}

/** The subjects in a mailbox's INBOX, read over IMAPS with its password. */
async function subjects(user: string): Promise<string[]> {
  const r = await stack.imap({ user, pass: PASSWORDS[user], source: newSource(), actions: [{ list: "INBOX" }] });
  if (r.error) throw new Error(`IMAP login of ${user} failed: ${r.error} ${r.response ?? ""}`);
  return (r.results![0] as { source: string }[]).map((m) => /^Subject: (.*)$/m.exec(m.source)?.[1] ?? "");
}

/** Waits until the message with `subject` is in `user`'s INBOX. */
async function arrives(user: string, subject: string): Promise<void> {
  await stack.until(`"${subject}" in ${user}'s INBOX`, async () => (await subjects(user)).includes(subject));
}


/** Bob's submission RCPT reply for `to`, once it matches `expected` (Postfix's processes take new maps after a reload). */
async function rcptAfterReload(to: string, expected: RegExp): Promise<string> {
  let reply = "";
  await stack.until(`RCPT TO:<${to}> to be answered ${expected}`, async () => {
    reply = (await submission("bob@example.com", ["MAIL FROM:<bob@example.com>", `RCPT TO:<${to}>`]))[2];
    return expected.test(reply);
  });
  return reply;
}

/** An IMAPS session held open as a client would (openssl s_client), logged in as `user`. */
async function openImapSession(user: string): Promise<{ child: ChildProcessWithoutNullStreams; output: () => string; closed: Promise<number | null> }> {
  const child = spawn("ip", ["netns", "exec", stack.ns, "openssl", "s_client", "-quiet", "-connect", `127.0.0.1:${stack.host.env.ports.imaps}`], { stdio: "pipe" });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (output += d));
  child.stderr.resume();
  const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
  await stack.until("the IMAP greeting", () => output.includes("* OK"), 10000);
  child.stdin.write(`a LOGIN ${user} "${PASSWORDS[user]}"\r\nb SELECT INBOX\r\n`);
  await stack.until(`${user}'s IMAP session to select INBOX`, () => /^b OK/m.test(output), 10000);
  return { child, output: () => output, closed };
}

describe("a catch-all and plus addressing", () => {
  test("an unknown address of the catch-all's domain reaches its owner; one of another domain is still refused", async () => {
    const subject = await deliver("nobody-known@example.org", "catch-all");
    await arrives("bob@example.com", subject);
    const refused = await stack.inbound(["nobody-known@example.com"]);
    expect(refused[1]).toMatch(/^550 5\.1\.1 <nobody-known@example\.com>: Recipient address rejected: User unknown/);
  });

  test("exact addresses win over the catch-all: a mailbox of its domain and the generated postmaster@", async () => {
    const toDave = await deliver("dave@example.org", "exact mailbox");
    const toPostmaster = await deliver("postmaster@example.org", "exact role");
    await arrives("dave@example.org", toDave);
    await arrives("alice@example.com", toPostmaster);
    const bob = await subjects("bob@example.com");
    expect(bob).not.toContain(toDave);
    expect(bob).not.toContain(toPostmaster);
  });

  test("plus addressing: user+tag@ reaches user's INBOX, alias+tag@ the alias's, in a catch-all domain too; an unknown user+tag@ reaches the catch-all", async () => {
    const alice = await deliver("alice+news@example.com", "plus alice");
    const info = await deliver("info+web@example.com", "plus alias");
    const dave = await deliver("dave+lists@example.org", "plus dave");
    const unknown = await deliver("nobody+x@example.org", "plus unknown");
    await arrives("alice@example.com", alice);
    await arrives("alice@example.com", info);
    await arrives("dave@example.org", dave);
    await arrives("bob@example.com", unknown);
    expect(await subjects("bob@example.com")).not.toContain(dave);
    // The tag is kept for the recipient's filters: the delivered copy says where it was sent.
    const r = await stack.imap({ user: "dave@example.org", pass: PASSWORDS["dave@example.org"], source: newSource(), actions: [{ list: "INBOX" }] });
    const copy = (r.results![0] as { source: string }[]).find((m) => m.source.includes(dave))!;
    expect(copy.source).toMatch(/^Delivered-To: dave\+lists@example\.org\r?$/m);
  });

  test("the catch-all's owner may not send as the addresses it collects, in the envelope or in From:", async () => {
    const envelope = await submission("bob@example.com", ["MAIL FROM:<nobody-known@example.org>", "RCPT TO:<alice@example.com>"]);
    expect(envelope[0]).toMatch(/^235 /);
    expect(code(envelope[1])).toBe(250);
    expect(envelope[2]).toMatch(/^553 5\.7\.1 <nobody-known@example\.org>: Sender address rejected: not owned by user bob@example\.com/);
    const header = await submission("bob@example.com", ["MAIL FROM:<bob@example.com>", "RCPT TO:<alice@example.com>", { data: message("nobody-known@example.org", "alice@example.com", "forged from") }]);
    expect(header.slice(1, 3).map(code)).toEqual([250, 250]);
    // The reply after the message (354 before it).
    expect(header[3].split("\n").pop()).toBe("554 5.7.1 From: <nobody-known@example.org> is not an address bob@example.com may send as");
  });
});

describe("a mailbox added, disabled and enabled again, each by the runtime-file sync alone", () => {
  const kept: string[] = [];

  test("added: it logs in over IMAPS and submission, and receives at its address and its own alias (exact, in the catch-all's domain)", async () => {
    const { stdout, reloads } = await applyConfig(WITH_CAROL);
    expect(stdout).toContain("mailstack-sync: updated aliases, mailboxes, sender-logins, users\n");
    expect(reloads.sort()).toEqual(["dovecot.service", "postfix.service"]);
    await rcptAfterReload("carol@example.com", /^250 /);
    expect(await subjects("carol@example.com")).toEqual([]);
    const sent = await submission("carol@example.com", ["MAIL FROM:<carol@example.com>", "RCPT TO:<alice@example.com>", { data: message("carol@example.com", "alice@example.com", "hello from carol") }]);
    expect(sent.map(code)).toEqual([235, 250, 250, 250, 221]);
    for (const to of ["carol@example.com", "carol@example.org", "team@example.com"]) kept.push(await deliver(to, `to ${to}`));
    for (const subject of kept) await arrives("carol@example.com", subject);
    expect(await subjects("bob@example.com")).not.toContain(kept[1]);
  });

  test("disabled: open sessions end, IMAPS and submission logins are refused, mail to it and its own alias gets its reply; its mail stays", async () => {
    const session = await openImapSession("carol@example.com");
    const bystander = await openImapSession("alice@example.com");
    const onDisk = stack.maildirCount("carol@example.com");
    expect(onDisk).toBe(kept.length);

    const { stdout, reloads } = await applyConfig(CAROL_DISABLED);
    expect(stdout).toContain("mailstack-sync: updated aliases, mailboxes, recipient-access, sender-logins, users\n");
    expect(stdout).toContain("mailstack-sync: ending the sessions of carol@example.com\n");
    expect(reloads.sort()).toEqual(["dovecot.service", "postfix.service"]);
    let ended = false;
    void session.closed.then(() => (ended = true));
    await stack.until("carol's IMAP session to end", () => ended, 10000);
    // Ended by doveadm kick (SIGTERM to its process), not by the reload: alice's session goes on.
    expect(session.output()).toMatch(/^\* BYE Server shutting down\.\r?$/m);
    bystander.child.stdin.write("c NOOP\r\n");
    await stack.until("alice's session to answer NOOP after the sync", () => /^c OK/m.test(bystander.output()), 10000);
    bystander.child.stdin.end("d LOGOUT\r\n");
    await bystander.closed;

    const refusal = `550 5.2.1 <carol@example.com>: Recipient address rejected: ${REPLY}`;
    // From our own users, on submission.
    expect(await rcptAfterReload("carol@example.com", /^550 /)).toBe(refusal);
    // From outside, at the address, a tagged one, and the own alias the catch-all would otherwise take.
    const outside = await stack.inbound(["carol@example.com", "carol+tag@example.com", "carol@example.org"]);
    expect(outside.slice(1, 4)).toEqual([
      refusal,
      `550 5.2.1 <carol+tag@example.com>: Recipient address rejected: ${REPLY}`,
      `550 5.2.1 <carol@example.org>: Recipient address rejected: ${REPLY}`,
    ]);

    const imap = await stack.imap({ user: "carol@example.com", pass: PASSWORDS["carol@example.com"], source: newSource(), actions: [{ list: "INBOX" }] });
    expect(imap.error).toBe("authentication failed");
    const login = await submission("carol@example.com", []);
    expect(login[0]).toMatch(/^535 5\.7\.8 /);

    // The team alias delivers to its other member, and nothing reaches her.
    const toTeam = await deliver("team@example.com", "team while disabled");
    await arrives("bob@example.com", toTeam);
    expect(stack.maildirCount("carol@example.com")).toBe(onDisk);
    // Everyone else as before.
    expect(await subjects("alice@example.com")).toContain("hello from carol");
  });

  test("enabled again: it logs in and finds its mail as it was, and receives again", async () => {
    const { stdout } = await applyConfig(WITH_CAROL);
    expect(stdout).toContain("mailstack-sync: updated aliases, mailboxes, recipient-access, sender-logins, users\n");
    expect(stdout).not.toContain("ending the sessions");
    await rcptAfterReload("carol@example.com", /^250 /);
    expect((await subjects("carol@example.com")).sort()).toEqual([...kept].sort());
    const again = await deliver("carol@example.com", "welcome back");
    await arrives("carol@example.com", again);
  });

  test("the host bundle of every one of these configurations is the one the host runs: nothing but the runtime files changed", () => {
    const bundle = (input: MailConfigInput) => hostFiles(parseConfig(input), TEST_PARAMS, stack.host.env).map((f) => [f.path, f.content]);
    const running = bundle(START);
    expect(bundle(WITH_CAROL)).toEqual(running);
    expect(bundle(CAROL_DISABLED)).toEqual(running);
  });
});
