/**
 * Backups and restores for real: mail delivered through the running stack (Postfix, rspamd,
 * Dovecot) is backed up by the rendered mailstack-backup, run as its unit runs it, with
 * Debian's restic into an S3 endpoint on loopback over HTTPS (s3rver), and brought back by the
 * rendered mailstack-restore, which Dovecot then serves over IMAPS.
 *
 * What differs from the host: the repository URL points at the local endpoint instead of
 * s3.<region>.amazonaws.com, its self-signed certificate is trusted through SSL_CERT_FILE,
 * static keys stand for the instance role's credentials, and `doveadm` reaches the stack's
 * Dovecot through a wrapper (its config lies in the stack's temporary root).
 */
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { backupPaths, type MailConfigInput } from "@mailstack/core";
import { message, source, TestStack } from "../support/stack";
import { requireRoot, requireTools, runAsync, type RunResult, runOk, TEST_RESTIC_PASSWORD, TOOL_PATH } from "../support/tools";

requireTools("restic", "doveadm", "ip", "openssl");
requireRoot("the stack runs in a network namespace of its own");

// s3rver ships no type declarations; this is the part of its API the suite uses.
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
const S3rver = require("s3rver") as new (options: Record<string, unknown>) => S3rverInstance;

const INPUT: MailConfigInput = {
  domain: "example.com",
  mailboxes: [
    { address: "alice@example.com", password: "first long test passphrase" },
    { address: "bob@example.com", password: "second long test passphrase" },
    { address: "carol@example.com", password: "third long test passphrase" },
  ],
  backupKeep: { daily: 3 },
};
const BUCKET = "mailstack-backup";
const BODY = "Minutes of the planning meeting: budget review, hiring timeline, office move, quarterly targets and the customer survey results.\n";

let stack: TestStack;
let s3: S3rverInstance;
let s3Dir: string;
let env: NodeJS.ProcessEnv;
let execStart: string;
let nextSource = 10;

interface Entry {
  type: "dir" | "file" | "other";
  mode: number;
  uid: number;
  gid: number;
  sha256?: string;
  size?: number;
  mtimeMs?: number;
}

/** Every entry below `dir`: path, type, mode, owner; content hash, size and mtime of files. */
function tree(dir: string): Record<string, Entry> {
  const out: Record<string, Entry> = {};
  const walk = (rel: string) => {
    const full = rel ? join(dir, rel) : dir;
    // Dovecot's lock and temporary files may vanish between readdir and lstat.
    const st = lstatSync(full, { throwIfNoEntry: false });
    if (!st) return;
    const entry: Entry = { type: st.isDirectory() ? "dir" : st.isFile() ? "file" : "other", mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
    if (st.isFile()) {
      let content: Buffer;
      try {
        content = readFileSync(full);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
        throw e;
      }
      Object.assign(entry, { sha256: createHash("sha256").update(content).digest("hex"), size: st.size, mtimeMs: st.mtimeMs });
    }
    out[rel || "."] = entry;
    if (st.isDirectory()) for (const name of readdirSync(full).sort()) walk(rel ? `${rel}/${name}` : name);
  };
  if (existsSync(dir)) walk("");
  return out;
}

/** Files only, without mtimes: what restic compares to decide what is new. */
const files = (t: Record<string, Entry>) => Object.fromEntries(Object.entries(t).filter(([, e]) => e.type === "file"));
const home = (address: string) => join(stack.paths.vmail, address.split("@")[1], address.split("@")[0]);
/** Message files of a mailbox (every folder, new/ and cur/). */
const messageFiles = (address: string) => Object.keys(files(tree(home(address)))).filter((p) => /(^|\/)(new|cur)\/[^/]+$/.test(p));
/** Every file below every backed-up path, keyed by absolute path. */
const backedUp = () => Object.fromEntries(backupPaths(stack.host.env).flatMap((p) => Object.entries(files(tree(p))).map(([rel, e]) => [join(p, rel), e])));

/** Submits messages in one authenticated session on 587 and waits until each mailbox has them. */
async function deliver(from: string, to: string, count: number): Promise<void> {
  const before = messageFiles(to).length;
  const auth = `AUTH PLAIN ${Buffer.from(`\0${from}\0${stack.password(from)}`).toString("base64")}`;
  const s = await stack.smtp({
    port: 587,
    source: source(nextSource++),
    steps: [
      "EHLO client.example.net",
      { starttls: true },
      "EHLO client.example.net",
      auth,
      ...Array.from({ length: count }, (_, i) => [`MAIL FROM:<${from}>`, `RCPT TO:<${to}>`, { data: message(from, to, `note ${i} ${randomBytes(4).toString("hex")}`, BODY) }]).flat(),
      "QUIT",
    ],
  });
  // After DATA, the last line of a reply is the verdict on the message.
  expect(s.replies.filter((r) => !/^2\d\d/.test(r.reply.split("\n").pop()!))).toEqual([]);
  // Dovecot acknowledges a delivery (and Postfix removes it from the queue) only after it has
  // updated the mailbox's uidlist and indexes: then the mailbox is still.
  await stack.until(`${count} messages for ${to}`, () => messageFiles(to).length === before + count && stack.queue().length === 0);
}

/** The rendered backup command (the unit's ExecStart), as the timer runs it. */
const backup = () => runAsync("bash", [execStart], { env });
const restore = (...args: string[]) => runAsync("bash", [join(stack.paths.sbin, "mailstack-restore"), ...args], { env });
const statusFile = () => JSON.parse(readFileSync(join(stack.paths.state, "backup-status.json"), "utf8"));

function ok(r: RunResult): RunResult {
  if (r.status !== 0) throw new Error(`exited ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r;
}

/** restic's summary of a backup run, the one JSON line mailstack-backup prints. */
function summary(r: RunResult): Record<string, number | string> {
  const line = r.stdout.split("\n").find((l) => l.includes('"message_type":"summary"'));
  if (!line) throw new Error(`no summary in ${r.stdout} ${r.stderr}`);
  return JSON.parse(line);
}

beforeAll(async () => {
  stack = await TestStack.start(INPUT);
  // S3 on the machine's loopback, over HTTPS with a certificate of its own.
  s3Dir = join(stack.root, "s3");
  mkdirSync(s3Dir);
  const cert = join(s3Dir, "cert.pem");
  const key = join(s3Dir, "key.pem");
  runOk("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert]);
  s3 = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory: join(s3Dir, "data"), cert: readFileSync(cert), key: readFileSync(key), configureBuckets: [{ name: BUCKET }] });
  const { port } = await s3.run();

  const defaults = Object.fromEntries(
    readFileSync(stack.host.path("/etc/default/mailstack"), "utf8")
      .split("\n")
      .filter((l) => /^[A-Z_0-9]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 2, -1)]),
  );
  expect(defaults.MAILSTACK_BACKUP_REPOSITORY).toBe("s3:https://s3.us-east-1.amazonaws.com/mailstack-backup-test/restic");
  const bin = join(stack.root, "test-bin");
  mkdirSync(bin);
  writeFileSync(join(bin, "doveadm"), `#!/bin/sh\nexec ip netns exec ${stack.ns} /usr/bin/doveadm -c ${stack.dovecotConfig} "$@"\n`);
  chmodSync(join(bin, "doveadm"), 0o755);
  env = {
    ...defaults,
    MAILSTACK_BACKUP_REPOSITORY: `s3:https://127.0.0.1:${port}/${BUCKET}/restic`,
    // The certificate is trusted as a CA would be, without restic's --cacert: the host's options.
    SSL_CERT_FILE: cert,
    AWS_ACCESS_KEY_ID: "S3RVER",
    AWS_SECRET_ACCESS_KEY: "S3RVER",
    HOME: stack.root,
    PATH: `${bin}:${TOOL_PATH}`,
  };
  const unit = readFileSync(stack.host.path("/etc/systemd/system/mailstack-backup.service"), "utf8");
  execStart = unit.match(/^ExecStart=(.*)$/m)![1];
}, 240000);

afterAll(async () => {
  await s3?.close();
  await stack?.stop();
});

let first: Record<string, number | string>;
let atFirst: Record<string, Entry>;
let atSecond: Record<string, Entry>;

test("the first backup initialises the repository in S3 over HTTPS, and records its status", async () => {
  await deliver("bob@example.com", "alice@example.com", 3);
  await deliver("alice@example.com", "bob@example.com", 3);
  await deliver("alice@example.com", "carol@example.com", 2);
  // A folder besides INBOX, for the folder restore below.
  expect(stack.doveadm("mailbox", "create", "-u", "bob@example.com", "Archive").status).toBe(0);
  expect(stack.doveadm("copy", "-u", "bob@example.com", "Archive", "mailbox", "INBOX", "ALL").status).toBe(0);
  expect(messageFiles("bob@example.com")).toHaveLength(6);
  atFirst = backedUp();

  const started = new Date();
  const r = ok(await backup());
  first = summary(r);
  expect(first.files_new).toBe(Object.keys(atFirst).length);
  expect(first.total_bytes_processed).toBe(Object.values(atFirst).reduce((n, e) => n + (e.size ?? 0), 0));

  const status = statusFile();
  expect(status).toEqual({ ok: true, last_attempt: status.last_success.time, last_success: expect.objectContaining({ snapshot_id: first.snapshot_id, files_new: first.files_new, data_added: first.data_added }) });
  const time = Date.parse(status.last_success.time);
  expect(time).toBeGreaterThanOrEqual(Math.floor(started.getTime() / 1000) * 1000);
  expect(time).toBeLessThanOrEqual(Date.now());

  // The repository is in the bucket, below restic/ and nowhere else.
  const bucket = join(s3Dir, "data", BUCKET);
  expect(readdirSync(bucket)).toEqual(["restic"]);
  const repo = readdirSync(join(bucket, "restic")).sort();
  expect(repo).toEqual(expect.arrayContaining(["config._S3rver_object", "data", "index", "keys", "snapshots"]));

  const list = ok(await restore("--list"));
  expect(list.stdout).toContain(String(first.snapshot_id).slice(0, 8));
  for (const p of backupPaths(stack.host.env)) expect(list.stdout).toContain(p);
});

test("a second backup after new mail is incremental: only the new messages are new files", async () => {
  await deliver("alice@example.com", "carol@example.com", 2);
  atSecond = backedUp();
  const added = Object.keys(atSecond).filter((p) => !(p in atFirst));
  const changed = Object.keys(atSecond).filter((p) => p in atFirst && atSecond[p].sha256 !== atFirst[p].sha256);
  expect(added.filter((p) => p.startsWith(home("carol@example.com")) && /\/(new|cur)\//.test(p))).toHaveLength(2);

  const second = summary(ok(await backup()));
  expect(second.files_new).toBe(added.length);
  expect(second.files_changed).toBe(changed.length);
  const changedBytes = [...added, ...changed].reduce((n, p) => n + (atSecond[p].size ?? 0), 0);
  // New and changed content plus restic's trees for the directories above it.
  expect(Number(second.data_added)).toBeLessThan(changedBytes + 64 * 1024);
  expect(Number(second.data_added)).toBeLessThan(Number(first.data_added) / 3);
  expect(statusFile().last_success.snapshot_id).toBe(second.snapshot_id);
});

test("one mailbox restored in place: deleted messages return, read ones are not doubled, other mailboxes untouched", async () => {
  // Reading moves alice's mail from new/ to cur/ under new names; then two are deleted.
  const read = await stack.messages("alice@example.com");
  expect(read).toHaveLength(3);
  const current = messageFiles("alice@example.com");
  expect(current.every((p) => p.includes("/cur/"))).toBe(true);
  for (const p of current.slice(0, 2)) rmSync(join(home("alice@example.com"), p));
  // Mail that arrived for someone else after the backup.
  await deliver("alice@example.com", "bob@example.com", 1);
  const others = { bob: tree(home("bob@example.com")), carol: tree(home("carol@example.com")) };

  const r = ok(await restore("alice@example.com"));
  expect(r.stderr).toMatch(/adding 2 files; keeping \d+ in place/);
  expect(r.stderr).not.toContain("force-resync failed");
  expect(messageFiles("alice@example.com")).toHaveLength(3);
  const after = tree(home("alice@example.com"));
  for (const e of Object.values(after)) expect([e.uid, e.gid]).toEqual([stack.host.env.vmail.uid, stack.host.env.vmail.gid]);
  expect({ bob: tree(home("bob@example.com")), carol: tree(home("carol@example.com")) }).toEqual(others);
  expect(readdirSync(stack.paths.vmail).filter((n) => n.startsWith("."))).toEqual([]);

  const served = await stack.messages("alice@example.com", "INBOX", source(201));
  expect(served.map((m) => m.source).sort()).toEqual(read.map((m) => m.source).sort());
});

test("one folder restored in place leaves the mailbox's other folders as they are", async () => {
  const archive = join(home("bob@example.com"), "Maildir", ".Archive");
  const inbox = () => Object.fromEntries(Object.entries(tree(join(home("bob@example.com"), "Maildir"))).filter(([p]) => !p.startsWith(".Archive")));
  const before = inbox();
  rmSync(archive, { recursive: true });

  ok(await restore("bob@example.com/Archive"));
  expect(inbox()).toEqual(before);
  // The folder's files as the second backup saw them, but for the index log, to which the
  // restore's force-resync has just added its record.
  const unindexed = (t: Record<string, Entry>) => Object.fromEntries(Object.entries(t).filter(([p]) => !p.startsWith("dovecot.index")));
  const restored = unindexed(files(tree(archive)));
  const saved = Object.fromEntries(Object.entries(atSecond).filter(([p]) => p.startsWith(`${archive}/`)).map(([p, e]) => [p.slice(archive.length + 1), e]));
  expect(Object.keys(restored).filter((p) => /^(new|cur)\//.test(p))).toHaveLength(3);
  expect(restored).toEqual(unindexed(saved));
  expect(await stack.messages("bob@example.com", "Archive", source(202))).toHaveLength(3);
});

test("a dry run changes nothing and says what it would add", async () => {
  const carol = messageFiles("carol@example.com");
  rmSync(join(home("carol@example.com"), carol[0]));
  const before = tree(stack.paths.vmail);

  const r = ok(await restore("--dry-run", "carol@example.com"));
  expect(r.stderr).toMatch(/dry run: would add 1 files; keeping \d+ in place/);
  expect(tree(stack.paths.vmail)).toEqual(before);

  const beside = join(stack.root, "dry-beside");
  const listed = ok(await restore("--dry-run", "--target", beside, "carol@example.com"));
  expect(listed.stdout).toContain(join(home("carol@example.com"), carol[0]));
  expect(existsSync(beside)).toBe(false);
});

test("restores beside: a mailbox into a directory, and --all with the configuration", async () => {
  const beside = join(stack.root, "beside");
  const live = tree(home("carol@example.com"));
  ok(await restore("--target", beside, "carol@example.com"));
  expect(tree(home("carol@example.com"))).toEqual(live);
  const carol = home("carol@example.com");
  const saved = Object.fromEntries(Object.entries(atSecond).filter(([p]) => p.startsWith(`${carol}/`)).map(([p, e]) => [p.slice(carol.length + 1), e]));
  expect(files(tree(join(beside, carol)))).toEqual(saved);

  const all = join(stack.root, "beside-all");
  ok(await restore("--all", "--target", all));
  const runtime = stack.paths.runtime;
  for (const f of ["users", "dkim/mail.key", "backup/restic-password"]) {
    expect(readFileSync(join(all, runtime, f), "utf8")).toBe(readFileSync(join(runtime, f), "utf8"));
  }
  expect(lstatSync(join(all, runtime, "users")).mode & 0o777).toBe(0o640);
  expect(readFileSync(join(all, stack.paths.postfixConfig, "main.cf"), "utf8")).toBe(readFileSync(join(stack.paths.postfixConfig, "main.cf"), "utf8"));
  expect(existsSync(join(all, stack.paths.tlsKey))).toBe(true);
  expect(existsSync(join(all, stack.paths.postfixQueue, "deferred"))).toBe(true);
});

test("after the maildirs are lost, a full restore brings them back bit-identical and Dovecot serves them", async () => {
  const mailboxes = ["alice@example.com", "bob@example.com", "carol@example.com"];
  const served = new Map<string, string[]>();
  // Earlier tests deleted files behind Dovecot's back; let it notice before it is asked.
  expect(stack.doveadm("force-resync", "-A", "*").status).toBe(0);
  for (const m of mailboxes) served.set(m, (await stack.messages(m, "INBOX", source(203))).map((x) => x.source).sort());
  await stack.stopDovecot();
  const before = tree(stack.paths.vmail);
  ok(await backup());

  for (const name of readdirSync(stack.paths.vmail)) rmSync(join(stack.paths.vmail, name), { recursive: true });
  expect(tree(stack.paths.vmail)).toEqual({ ".": before["."] });
  const r = ok(await restore("--all"));
  // Dovecot is down: the restore says so and leaves the indexes to it.
  expect(r.stderr).toContain("a stopped Dovecot reads the restored mail when it starts");
  expect(tree(stack.paths.vmail)).toEqual(before);

  await stack.startDovecot();
  for (const m of mailboxes) expect((await stack.messages(m, "INBOX", source(204))).map((x) => x.source).sort()).toEqual(served.get(m));
});

test("a failing backup exits nonzero, says so, and keeps the last success in the status file", async () => {
  const before = statusFile();
  const password = join(stack.paths.runtime, "backup/restic-password");
  writeFileSync(password, "not the repository's password\n");
  try {
    const r = await backup();
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("mailstack-backup: FAILED");
    const after = statusFile();
    expect(after).toEqual({ ok: false, last_attempt: expect.any(String), last_success: before.last_success });
    expect(after.last_attempt >= before.last_success.time).toBe(true);
  } finally {
    writeFileSync(password, `${TEST_RESTIC_PASSWORD}\n`);
  }
});
