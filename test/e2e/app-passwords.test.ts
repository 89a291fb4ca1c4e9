/**
 * App passwords and passwords on a running host, each change a changed configuration that the
 * real mailstack-sync applies (runtime-sync.ts): real Dovecot answers IMAPS and POP3S, and
 * submission through its auth socket, from the runtime files alone.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { hostFiles, type MailConfigInput, type Manifest, parseConfig } from "@mailstack/core";
import { runtimeSync } from "../support/runtime-sync";
import { message, source, TestStack } from "../support/stack";
import { requireRoot, requireTools, TEST_PARAMS } from "../support/tools";

requireTools("doveadm", "ip", "openssl", "python3", "boto3");
requireRoot("the stack runs in a network namespace of its own");

const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const PASSWORDS: Record<string, string> = { [ALICE]: "first long test passphrase", [BOB]: "second long test passphrase" };
const BOB_NEW = "the next long test passphrase";
/** Alice's clients: the phone everywhere, the scanner only sends, the tablet only reads. */
const PHONE = "phone-Qx7v2LmR9tKw";
const SCANNER = "scanner-Jd4pZ8nB1sYc";
const TABLET = "tablet-Hf6uE3wN0aGq";

const base = (alice: Partial<MailConfigInput["mailboxes"][number]> = {}, bobPassword = PASSWORDS[BOB]): MailConfigInput => ({
  domain: "example.com",
  pop3: true,
  mailboxes: [
    { address: ALICE, password: PASSWORDS[ALICE], ...alice },
    { address: BOB, password: bobPassword },
  ],
});
const START = base();
const APPS = [
  { name: "phone", password: PHONE },
  { name: "scanner", password: SCANNER, services: ["submission" as const] },
  { name: "tablet", password: TABLET, services: ["imap" as const] },
];
const WITH_APPS = base({ appPasswords: APPS });
const TABLET_REVOKED = base({ appPasswords: APPS.slice(0, 2) });
const APP_ONLY = base({ appPasswords: APPS.slice(0, 2), requireAppPasswords: true });
const BOB_CHANGED = base({ appPasswords: APPS.slice(0, 2), requireAppPasswords: true }, BOB_NEW);

let stack: TestStack;
const { apply } = runtimeSync(() => stack);
let nextSource = 10;
const newSource = () => source(nextSource++);

beforeAll(async () => {
  stack = await TestStack.start(START);
}, 240000);
afterAll(async () => {
  await stack?.stop();
});

const code = (reply: string | undefined) => Number((reply ?? "").split("\n").pop()!.slice(0, 3));

/** The reply to AUTH PLAIN on 587 after STARTTLS, and (if it was accepted) the replies to `steps`. */
async function submission(user: string, pass: string, steps: (string | { data: string })[] = []): Promise<number[]> {
  const auth = `AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString("base64")}`;
  const s = await stack.smtp({ port: 587, source: newSource(), steps: ["EHLO client.example.net", { starttls: true }, "EHLO client.example.net", auth, ...steps, "QUIT"] });
  return s.replies.slice(3).map((r) => code(r.reply));
}

/** Whether an IMAPS login with `pass` opens the INBOX. */
async function imapLogin(user: string, pass: string): Promise<boolean> {
  const r = await stack.imap({ user, pass, source: newSource(), actions: [{ status: "INBOX" }] });
  if (r.error && r.error !== "authentication failed") throw new Error(`IMAP: ${r.error} ${r.response ?? ""}`);
  return !r.error;
}

/** Whether a POP3S login with `pass` is accepted (openssl s_client, as POP3 has no client in the harness). */
function pop3Login(user: string, pass: string): boolean {
  const r = stack.exec("openssl", ["s_client", "-quiet", "-ign_eof", "-connect", `127.0.0.1:${stack.host.env.ports.pop3s}`], `USER ${user}\r\nPASS ${pass}\r\nQUIT\r\n`);
  const answer = r.stdout.split("\n").map((l) => l.trim()).filter((l) => /^[+-]/.test(l));
  // The greeting, USER's +OK, then PASS's answer.
  if (answer.length < 3 || !answer[0].startsWith("+OK")) throw new Error(`POP3: ${r.stdout} ${r.stderr}`);
  return answer[2].startsWith("+OK");
}

/** Every protocol's verdict on one credential, for one comparison per credential. */
async function logins(user: string, pass: string): Promise<{ imap: boolean; pop3: boolean; submission: boolean }> {
  return { imap: await imapLogin(user, pass), pop3: pop3Login(user, pass), submission: (await submission(user, pass))[0] === 235 };
}
const EVERYWHERE = { imap: true, pop3: true, submission: true };
const NOWHERE = { imap: false, pop3: false, submission: false };

/** An IMAPS session held open as a client would (openssl s_client), logged in with `pass`. */
async function openImapSession(user: string, pass: string): Promise<{ child: ChildProcessWithoutNullStreams; output: () => string; ended: () => boolean }> {
  const child = spawn("ip", ["netns", "exec", stack.ns, "openssl", "s_client", "-quiet", "-connect", `127.0.0.1:${stack.host.env.ports.imaps}`], { stdio: "pipe" });
  let output = "";
  let ended = false;
  child.stdout.setEncoding("utf8").on("data", (d: string) => (output += d));
  child.stderr.resume();
  child.on("close", () => (ended = true));
  await stack.until("the IMAP greeting", () => output.includes("* OK"), 10000);
  child.stdin.write(`a LOGIN ${user} "${pass}"\r\nb SELECT INBOX\r\n`);
  await stack.until(`${user}'s IMAP session to select INBOX`, () => /^b OK/m.test(output), 10000);
  return { child, output: () => output, ended: () => ended };
}

/** Every runtime file's content, by name. */
function runtimeDir(): Record<string, string> {
  const root = stack.paths.runtime;
  const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
  return Object.fromEntries(walk(root).sort().map((path) => [path.slice(root.length + 1), readFileSync(path, "utf8")]));
}

/** Waits until a sync's change is in force: Dovecot's processes re-read the passwd-files after the reload. */
async function inForce(user: string, pass: string, expected: Awaited<ReturnType<typeof logins>>): Promise<void> {
  await stack.until(`${user}'s logins to be ${JSON.stringify(expected)}`, async () => JSON.stringify(await logins(user, pass)) === JSON.stringify(expected));
}

describe("app passwords and passwords, changed on the running host by the runtime-file sync alone", () => {
  test("added: each app password logs in where its services allow, next to the mailbox's password; Dovecot alone is reloaded", async () => {
    expect(await logins(ALICE, PHONE)).toEqual(NOWHERE);
    const { stdout, reloads } = await apply(WITH_APPS);
    expect(stdout).toBe("mailstack-sync: updated app-passwords\nmailstack-sync: reloading dovecot.service\n");
    expect(reloads).toEqual(["dovecot.service"]);
    await inForce(ALICE, PHONE, EVERYWHERE);
    expect(await logins(ALICE, SCANNER)).toEqual({ imap: false, pop3: false, submission: true });
    expect(await logins(ALICE, TABLET)).toEqual({ imap: true, pop3: false, submission: false });
    expect(await logins(ALICE, PASSWORDS[ALICE])).toEqual(EVERYWHERE);
    // Another mailbox's app password is nobody's password here.
    expect(await logins(BOB, PHONE)).toEqual(NOWHERE);
    // The scanner sends as alice, signed in with its own secret.
    const sent = await submission(ALICE, SCANNER, ["MAIL FROM:<alice@example.com>", "RCPT TO:<bob@example.com>", { data: message(ALICE, BOB, "scanned document") }]);
    expect(sent).toEqual([235, 250, 250, 250, 221]);
    await stack.until("the scanned document in bob's INBOX", async () => (await stack.messages(BOB)).some((m) => m.source.includes("Subject: scanned document")));
  });

  test("revoked: the tablet's password is refused and alice's open sessions end; the phone and scanner go on", async () => {
    const tabletSession = await openImapSession(ALICE, TABLET);
    const bobSession = await openImapSession(BOB, PASSWORDS[BOB]);
    const { stdout } = await apply(TABLET_REVOKED);
    expect(stdout).toContain("mailstack-sync: updated app-passwords\n");
    expect(stdout).toContain("mailstack-sync: ending the sessions of alice@example.com\n");
    await stack.until("the tablet's IMAP session to end", () => tabletSession.ended(), 10000);
    expect(tabletSession.output()).toMatch(/^\* BYE /m);
    // Bob's session is not alice's: it answers.
    bobSession.child.stdin.write("c NOOP\r\n");
    await stack.until("bob's session to answer NOOP", () => /^c OK/m.test(bobSession.output()), 10000);
    bobSession.child.stdin.end("d LOGOUT\r\n");
    await inForce(ALICE, TABLET, NOWHERE);
    expect(await logins(ALICE, PHONE)).toEqual(EVERYWHERE);
    expect(await logins(ALICE, SCANNER)).toEqual({ imap: false, pop3: false, submission: true });
  });

  test("requireAppPasswords: alice's own password is refused on IMAP, POP3 and submission, a session opened with it ends; her app passwords and bob are untouched", async () => {
    const session = await openImapSession(ALICE, PASSWORDS[ALICE]);
    const { stdout } = await apply(APP_ONLY);
    expect(stdout).toContain("mailstack-sync: ending the sessions of alice@example.com\n");
    await stack.until("the session opened with alice's own password to end", () => session.ended(), 10000);
    await inForce(ALICE, PASSWORDS[ALICE], NOWHERE);
    expect(await logins(ALICE, PHONE)).toEqual(EVERYWHERE);
    expect(await logins(ALICE, SCANNER)).toEqual({ imap: false, pop3: false, submission: true });
    expect(await logins(BOB, PASSWORDS[BOB])).toEqual(EVERYWHERE);
  });

  test("a changed password: the old one is refused at once, the new one logs in, and the sessions opened with the old one end", async () => {
    const session = await openImapSession(BOB, PASSWORDS[BOB]);
    const { stdout } = await apply(BOB_CHANGED);
    expect(stdout).toBe("mailstack-sync: updated users\nmailstack-sync: reloading dovecot.service\nmailstack-sync: ending the sessions of bob@example.com\n");
    await stack.until("bob's session to end", () => session.ended(), 10000);
    await inForce(BOB, BOB_NEW, EVERYWHERE);
    expect(await logins(BOB, PASSWORDS[BOB])).toEqual(NOWHERE);
    expect(await logins(ALICE, PHONE)).toEqual(EVERYWHERE);
  });

  test("an update that is corrupt, or only half published, is refused whole: every user logs in as before, and no runtime file changes", async () => {
    const before = runtimeDir();
    // Carol is new; bob's users line gains a field that would let any password in.
    const withCarol = { ...BOB_CHANGED, mailboxes: [...BOB_CHANGED.mailboxes, { address: "carol@example.com", password: "a third long test passphrase" }] };
    const corrupt = await apply(withCarol, {
      edit: (delivery) => {
        const manifest = JSON.parse(delivery.manifest) as Manifest;
        const doc = JSON.parse(delivery.object) as { files: Record<string, string> };
        doc.files.users = doc.files.users.replace(/^(bob@example\.com:[^\n]*)$/m, "$1 nopassword=y");
        manifest.files.find((f) => f.name === "users")!.sha256 = createHash("sha256").update(doc.files.users).digest("hex");
        delivery.object = JSON.stringify(doc);
        delivery.manifest = JSON.stringify(manifest);
      },
      status: 1,
    });
    expect(corrupt.stderr).toMatch(/^mailstack-sync: not installing the runtime files: users line 2 is not /);
    // The manifest of the next `pulumi up` published while the object is still this one's: the hashes disagree.
    const half = await apply(BOB_CHANGED, {
      edit: (delivery) => {
        const manifest = JSON.parse(delivery.manifest) as Manifest;
        manifest.files.find((f) => f.name === "users")!.sha256 = "0".repeat(64);
        delivery.manifest = JSON.stringify(manifest);
      },
      status: 75,
    });
    expect(half.stderr).toMatch(/will retry/);
    expect(runtimeDir()).toEqual(before);
    expect(await logins(BOB, BOB_NEW)).toEqual(EVERYWHERE);
    expect(await logins(BOB, "anything at all, long enough")).toEqual(NOWHERE);
    expect(await logins(ALICE, PHONE)).toEqual(EVERYWHERE);
    expect(await imapLogin("carol@example.com", "a third long test passphrase")).toBe(false);
  });

  test("the host bundle of every one of these configurations is the one the host runs: nothing but the runtime files changed", () => {
    const bundle = (input: MailConfigInput) => hostFiles(parseConfig(input), TEST_PARAMS, stack.host.env).map((f) => [f.path, f.content]);
    const running = bundle(START);
    for (const input of [WITH_APPS, TABLET_REVOKED, APP_ONLY, BOB_CHANGED]) expect(bundle(input)).toEqual(running);
  });
});
