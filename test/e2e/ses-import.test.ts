/**
 * The SES safety net's import, for real: messages stored as SES stores them (raw MIME with
 * SES's Return-Path, Received and X-SES headers prepended, under inbound/<address>/<id>) in
 * s3rver over HTTPS, handed by the rendered mailstack-ses-import (run as its unit runs it,
 * with the rendered settings) to the stack's Postfix import service, which filters them with
 * rspamd as port 25 does and delivers them with Dovecot.
 *
 * What differs from the host: S3 is s3rver on this machine's loopback (path-style, its
 * self-signed certificate trusted through AWS_CA_BUNDLE, s3rver's static keys for the role's
 * credentials), with a middleware of the test's in front of its routes that can refuse or hold
 * a request; and the script reaches the import port, 127.0.0.1:10026 inside the stack's
 * namespace, through a bridge from a port of this namespace's loopback (netns-bridge.ts), whose
 * relay connects from the namespace's 127.0.0.1 as the script does on a host.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync } from "node:fs";
import { request } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { HOST_SCRIPTS, type MailConfigInput, SES_INBOUND_PREFIX, SES_REJECTED_PREFIX, sesInboundMx } from "@mailstack/core";
import { fakeAwsEnv } from "../support/fake-aws";
import { NetnsBridge } from "../support/netns-bridge";
import { escapeRegExp, header, message, NO_DMARC_DOMAIN, OUTSIDE_DOMAIN, OUTSIDE_IP, sleep, source, TestStack } from "../support/stack";
import { hostSettings, requireRoot, requireTools, runAsync, type RunResult, runOk, TEST_PARAMS, TOOL_PATH } from "../support/tools";

requireTools("postconf", "doveadm", "rspamadm", "ip", "openssl", "python3", "boto3");
requireRoot("the stack runs in a network namespace of its own");

// s3rver ships no type declarations; this is the part of its API the suite uses. It is a Koa
// application: a middleware put first sees every request before s3rver's routes do.
interface KoaContext {
  method: string;
  path: string;
  headers: Record<string, string | undefined>;
  status: number;
  body: unknown;
  type: string;
  app: { allowMismatchedSignatures: boolean };
}
type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  middleware: Middleware[];
}
const S3rver = require("s3rver") as new (options: Record<string, unknown>) => S3rverInstance;

const REGION = "eu-west-1";
const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const CAROL = "carol@example.com";
const MAILBOXES = [ALICE, BOB, CAROL];
const INPUT: MailConfigInput = {
  domain: "example.com",
  mailboxes: [
    { address: ALICE, password: "first long test passphrase" },
    { address: BOB, password: "second long test passphrase" },
    { address: CAROL, password: "third long test passphrase" },
  ],
  // A mailbox of its own, where a bounce or a notice to the postmaster would show.
  postmaster: CAROL,
  // Small, so that a message over it is cheap to store.
  messageSizeLimitMiB: 1,
  sesInbound: true,
  sesRegion: REGION,
};
const BUCKET = TEST_PARAMS.sesInboundBucket!;
// Long enough for rspamd's Bayes classifier, which skips messages of fewer than 11 tokens.
const BODY = "Minutes of the planning meeting: budget review, hiring timeline, office move, quarterly targets and the customer survey results.\n";
const GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";
const OUTSIDE_MX = { helo: `mx.${OUTSIDE_DOMAIN}`, name: `mx.${OUTSIDE_DOMAIN}`, ip: OUTSIDE_IP };

let stack: TestStack;
let bridge: NetnsBridge;
let s3: S3rverInstance;
let s3Port: number;
let cert: string;
let env: NodeJS.ProcessEnv;
let execStart: string;
/** The ses-import service's XCLIENT authorization as the core rendered it. */
let renderedXclient: string;
/** Decides a request before s3rver does: true when it has answered it. */
let intercept: ((ctx: KoaContext) => Promise<boolean>) | undefined;

beforeAll(async () => {
  stack = await TestStack.start(INPUT);
  // master.cf's name of the import service (postconf -P's service/type).
  const IMPORT_SERVICE = `127.0.0.1:${stack.host.env.ports.sesImport}/inet`;
  renderedXclient = runOk("postconf", ["-c", stack.paths.postfixConfig, "-Ph", `${IMPORT_SERVICE}/smtpd_authorized_xclient_hosts`]).stdout.trim();
  bridge = await NetnsBridge.start(stack.ns, [stack.host.env.ports.sesImport]);
  const dir = join(stack.root, "s3");
  mkdirSync(dir);
  cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  runOk("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert]);
  s3 = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory: join(dir, "data"), cert: readFileSync(cert), key: readFileSync(key), configureBuckets: [{ name: BUCKET }] });
  s3.middleware.unshift(async (ctx, next) => {
    if (intercept && (await intercept(ctx))) return;
    const copySource = ctx.headers["x-amz-copy-source"];
    if (copySource === undefined) return next();
    // CopyObject's source is URL-encoded (botocore writes the key's @ as %40); S3 decodes it
    // whole, s3rver with decodeURI, which leaves %40 as it is. Decoded here as S3 does, the
    // header no longer matches its signature: s3rver checks none for this one request.
    ctx.headers["x-amz-copy-source"] = decodeURIComponent(copySource);
    ctx.app.allowMismatchedSignatures = true;
    try {
      await next();
    } finally {
      ctx.app.allowMismatchedSignatures = false;
    }
  });
  s3Port = (await s3.run()).port;

  const settings = hostSettings(stack.host);
  expect(settings).toMatchObject({
    MAILSTACK_SES_BUCKET: BUCKET,
    MAILSTACK_SES_REGION: REGION,
    MAILSTACK_SES_IMPORT_PORT: String(stack.host.env.ports.sesImport),
    MAILSTACK_SES_INBOUND_PREFIX: SES_INBOUND_PREFIX,
    MAILSTACK_SES_REJECTED_PREFIX: SES_REJECTED_PREFIX,
    MAILSTACK_SES_IMPORT_STATE: join(stack.paths.state, "ses-import.json"),
  });
  env = fakeAwsEnv(stack.root, {
    ...settings,
    // The bridge's end of the import port; everything else as the settings file has it.
    MAILSTACK_SES_IMPORT_PORT: String(bridge.ports.get(stack.host.env.ports.sesImport)),
    AWS_ACCESS_KEY_ID: "S3RVER",
    AWS_SECRET_ACCESS_KEY: "S3RVER",
    AWS_CA_BUNDLE: cert,
    PATH: TOOL_PATH,
  });
  const unit = readFileSync(stack.host.path(`/etc/systemd/system/${HOST_SCRIPTS.sesImport}.service`), "utf8");
  execStart = unit.match(/^ExecStart=(.*)$/m)![1];
  expect(execStart).toBe(join(stack.paths.sbin, HOST_SCRIPTS.sesImport));
}, 240000);

afterAll(async () => {
  await s3?.close();
  await bridge?.stop();
  await stack?.stop();
});

afterEach(() => {
  intercept = undefined;
});

/** One request to s3rver, unsigned (it lets anonymous requests through). */
function s3Request(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: s3Port, method, path, headers, ca: readFileSync(cert) }, (res) => {
      let data = "";
      res.setEncoding("utf8").on("data", (d: string) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const objectPath = (key: string) => `/${BUCKET}/${key.split("/").map(encodeURIComponent).join("/")}`;

/** Stores an object as SES does, or as if it had done so `ageDays` ago. */
async function put(key: string, content: string, ageDays = 0, headers: Record<string, string> = {}): Promise<void> {
  const r = await s3Request("PUT", objectPath(key), content, headers);
  expect(r.status).toBe(200);
  if (ageDays) {
    // s3rver's LastModified is its file's mtime.
    const file = join(stack.root, "s3", "data", BUCKET, `${key}._S3rver_object`);
    const then = new Date(Date.now() - ageDays * 86400e3);
    utimesSync(file, then, then);
  }
}

const get = async (key: string) => (await s3Request("GET", objectPath(key))).body;

/** Every key below `prefix`, as ListObjectsV2 gives them. */
async function keys(prefix = ""): Promise<string[]> {
  const r = await s3Request("GET", `/${BUCKET}?list-type=2&prefix=${encodeURIComponent(prefix)}`);
  expect(r.status).toBe(200);
  return [...r.body.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1].replace(/&amp;/g, "&")).sort();
}

interface SesMessage {
  data: string;
  messageId: string;
  sesId: string;
}

/**
 * A message as SES's S3 action stores it: what the sender's server sent (CRLF), with SES's
 * Return-Path, its Received header naming that server, and its verdicts prepended.
 */
function sesMessage(options: { from?: string; to: string[]; subject: string; body?: string; client?: { helo: string; name: string; ip: string }; returnPath?: string }): SesMessage {
  const from = options.from ?? `news@${OUTSIDE_DOMAIN}`;
  const client = options.client ?? OUTSIDE_MX;
  const sesId = randomBytes(18).toString("hex");
  const original = message(from, options.to.join(", "), options.subject, options.body ?? BODY);
  const messageId = /^Message-ID: (<[^>]+>)$/m.exec(original)![1];
  const prepended = [
    `Return-Path: ${options.returnPath ?? `<${from}>`}`,
    `Received: from ${client.helo} (${client.name} [${client.ip}])`,
    ` by ${sesInboundMx(REGION)} with SMTP id ${sesId}`,
    ` for ${options.to[0]};`,
    ` ${new Date().toUTCString().replace("GMT", "+0000 (UTC)")}`,
    "X-SES-Spam-Verdict: PASS",
    "X-SES-Virus-Verdict: PASS",
    `Received-SPF: pass (spfCheck: domain of ${OUTSIDE_DOMAIN} designates ${client.ip} as permitted sender) client-ip=${client.ip}; envelope-from=${from}; helo=${client.helo};`,
    `Authentication-Results: amazonses.com; spf=pass (spfCheck: domain of ${OUTSIDE_DOMAIN} designates ${client.ip} as permitted sender) client-ip=${client.ip}; envelope-from=${from}; helo=${client.helo}; dmarc=pass header.from=${OUTSIDE_DOMAIN};`,
    `X-SES-RECEIPT: ${randomBytes(48).toString("base64")}`,
  ];
  return { data: [...prepended, original].join("\n").replace(/\r?\n/g, "\r\n"), messageId, sesId };
}

const keyOf = (address: string, m: SesMessage) => `${SES_INBOUND_PREFIX}${address}/${m.sesId}`;

/** Stores a message under each recipient's prefix, as one receipt rule per address does. */
async function store(m: SesMessage, to: string[], ageDays = 0): Promise<string[]> {
  for (const address of to) await put(keyOf(address, m), m.data, ageDays);
  return to.map((address) => keyOf(address, m));
}

const args = () => ["--s3-endpoint-url", `https://127.0.0.1:${s3Port}`];
/** The rendered importer, as its unit runs it (the settings file's environment). */
const runImport = (): Promise<RunResult> => runAsync(execStart, args(), { env });

const stateFile = () => join(stack.paths.state, "ses-import.json");
const recorded = (): Record<string, string> => (existsSync(stateFile()) ? JSON.parse(readFileSync(stateFile(), "utf8")).keys : {});

/** Message files of a mailbox (every folder, new/ and cur/). */
function messageFiles(address: string): string[] {
  const [local, domain] = address.split("@");
  const root = join(stack.paths.vmail, domain, local, "Maildir");
  if (!existsSync(root)) return [];
  const folders = ["", ...readdirSync(root).filter((n) => n.startsWith("."))];
  return folders.flatMap((folder) =>
    ["new", "cur"].flatMap((sub) => {
      const dir = join(root, folder, sub);
      return existsSync(dir) ? readdirSync(dir).map((n) => join(dir, n)) : [];
    }),
  );
}

/** The Message-IDs in a mailbox, each as often as it was delivered. */
const messageIds = (address: string): string[] => messageFiles(address).map((f) => /^Message-ID: (<[^>]+>)\r?$/im.exec(readFileSync(f, "utf8"))?.[1] ?? f);
const copies = (address: string, messageId: string) => messageIds(address).filter((id) => id === messageId).length;
const counts = () => Object.fromEntries(MAILBOXES.map((m) => [m, messageFiles(m).length]));

/** The delivered copy of a message. */
function delivered(address: string, messageId: string): string {
  const file = messageFiles(address).find((f) => readFileSync(f, "utf8").includes(`Message-ID: ${messageId}`));
  if (!file) throw new Error(`${messageId} is not in ${address}'s mailbox`);
  return readFileSync(file, "utf8");
}

/** The script's line about one key. */
const lineOf = (r: RunResult, key: string) => r.stdout.split("\n").filter((l) => l.startsWith(`mailstack-ses-import: ${key}: `));

/** Waits until Postfix has handed everything to Dovecot and each mailbox holds `expected` messages. */
async function settle(expected: Record<string, number>): Promise<void> {
  await stack.until("delivery", () => stack.queue().length === 0 && MAILBOXES.every((m) => messageFiles(m).length === expected[m]));
}

test("the core's import service lets the importer speak for SES's client (XCLIENT from loopback)", () => {
  // XFORWARD instead would reach Postfix's log and nothing else: rspamd would judge the
  // importer on 127.0.0.1, exempt from SPF, DMARC, greylisting and the RBLs.
  expect(renderedXclient).toBe("127.0.0.0/8");
});

test("one run delivers each stored message to its address once, through rspamd as from the server SES saw, and empties inbound/", async () => {
  const before = counts();
  const toAlice = sesMessage({ to: [ALICE], subject: "for alice" });
  const toBob = sesMessage({ to: [BOB], subject: "for bob" });
  const toBoth = sesMessage({ to: [ALICE, BOB], subject: "for both" });
  // A notice from a mail system: SES's Return-Path is <>, and so is MAIL FROM.
  const notice = sesMessage({ from: `mailer-daemon@${NO_DMARC_DOMAIN}`, returnPath: "<>", to: [BOB], subject: "delivery status" });
  const stored = [...(await store(toAlice, [ALICE])), ...(await store(toBob, [BOB])), ...(await store(toBoth, [ALICE, BOB])), ...(await store(notice, [BOB]))];
  // SES writes this under each rule's prefix when the rule is made; it is no one's mail.
  const setup = `${SES_INBOUND_PREFIX}${ALICE}/AMAZON_SES_SETUP_NOTIFICATION`;
  await put(setup, "Amazon SES has successfully set up this bucket as a destination.\r\n");
  expect(await keys(SES_INBOUND_PREFIX)).toEqual([...stored, setup].sort());

  const r = await runImport();
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
  const queueIds = stored.map((key) => {
    const line = lineOf(r, key);
    expect(line).toEqual([expect.stringMatching(/: delivered to \S+ from mx\.outside\.example\[198\.51\.100\.20\]: 250 2\.0\.0 Ok: queued as \w+; deleted$/)]);
    return /queued as (\w+)/.exec(line[0])![1];
  });
  expect(lineOf(r, setup)).toEqual([`mailstack-ses-import: ${setup}: SES's notice that the receipt rule can write here; deleted`]);
  await settle({ ...before, [ALICE]: before[ALICE] + 2, [BOB]: before[BOB] + 3 });
  expect(header(delivered(BOB, notice.messageId), "Return-Path")).toEqual(["Return-Path: <>"]);

  // Each copy once, the message to both in both mailboxes.
  expect([copies(ALICE, toAlice.messageId), copies(ALICE, toBoth.messageId), copies(BOB, toBob.messageId), copies(BOB, toBoth.messageId)]).toEqual([1, 1, 1, 1]);
  expect(await keys()).toEqual([]);
  expect(recorded()).toEqual({});

  // rspamd judged the server SES saw, as on port 25: SPF and DMARC against its address, its verdict in the headers.
  for (const [address, m] of [[ALICE, toAlice], [BOB, toBob], [ALICE, toBoth]] as const) {
    const got = delivered(address, m.messageId);
    // Below Dovecot's own, Postfix's names the client as port 25's would.
    expect(header(got, "Received")[1]).toMatch(/^Received: from mx\.outside\.example \(mx\.outside\.example \[198\.51\.100\.20\]\) by mail\.example\.com \(Postfix\) with ESMTP id \w+ for <[^>]+>;/);
    const results = header(got, "Authentication-Results").join("\n");
    expect(results).toMatch(/^Authentication-Results: mail\.example\.com;/);
    expect(results).toMatch(/spf=pass \([^)]*designates 198\.51\.100\.20 as permitted sender\) smtp\.mailfrom=news@outside\.example/);
    expect(results).toMatch(/dmarc=pass \(policy=reject\) header\.from=outside\.example/);
    expect(header(got, "X-Spamd-Bar")).toHaveLength(1);
    expect(header(got, "Return-Path")).toEqual(["Return-Path: <news@outside.example>"]);
    // SES's own headers stay, for whoever wants to read them.
    expect(header(got, "X-SES-Spam-Verdict")).toEqual(["X-SES-Spam-Verdict: PASS"]);
  }
  const log = stack.log("mail");
  for (const id of queueIds) expect(log).toMatch(new RegExp(`postfix/ses-import/smtpd\\[\\d+\\]: ${id}: client=mx\\.outside\\.example\\[198\\.51\\.100\\.20\\]$`, "m"));
  expect(stack.log("rspamd")).toMatch(new RegExp(`qid: <${queueIds[0]}>, ip: 198\\.51\\.100\\.20, from: <news@outside\\.example>`));
});

test("a run killed between a delivery and its delete, run again, delivers every message exactly once", async () => {
  const before = counts();
  const messages = Array.from({ length: 30 }, (_, i) => ({ to: i % 2 ? BOB : ALICE, m: sesMessage({ to: [i % 2 ? BOB : ALICE], subject: `batch ${i}` }) }));
  for (const { to, m } of messages) await store(m, [to]);
  // The 12th delete waits until the test has killed the importer: the message is delivered
  // and recorded, its object still in the bucket.
  let deletes = 0;
  let held: () => void = () => undefined;
  const holding = new Promise<string>((resolve) => {
    intercept = async (ctx) => {
      if (ctx.method !== "DELETE" || ++deletes !== 12) return false;
      resolve(decodeURIComponent(ctx.path).slice(BUCKET.length + 2));
      await new Promise<void>((release) => (held = release));
      ctx.status = 503;
      return true;
    };
  });
  const child: ChildProcess = spawn(execStart, args(), { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code, signal) => resolve(signal === "SIGKILL" ? null : code)));
  const interrupted = await holding;
  await stack.until("12 deliveries", () => messageFiles(ALICE).length + messageFiles(BOB).length - before[ALICE] - before[BOB] === 12);
  // The timer's next run, or one by hand, while this one is at work: it leaves everything to it.
  const meanwhile = await runImport();
  expect(meanwhile).toEqual({ status: 75, stdout: "mailstack-ses-import: another run is importing; leaving it to that one\n", stderr: "" });
  child.kill("SIGKILL");
  expect(await exited).toBeNull();
  held();
  intercept = undefined;
  expect(out.split("\n").filter((l) => l.includes(": delivered to "))).toHaveLength(11);
  expect(recorded()[interrupted]).toBe("delivered");
  expect(await keys(SES_INBOUND_PREFIX)).toHaveLength(19);

  const r = await runImport();
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
  expect(lineOf(r, interrupted)).toEqual([`mailstack-ses-import: ${interrupted}: delivered by an earlier run; deleted`]);
  expect(r.stdout.split("\n").filter((l) => l.includes(": delivered to "))).toHaveLength(18);
  await settle({ ...before, [ALICE]: before[ALICE] + 15, [BOB]: before[BOB] + 15 });
  for (const { to, m } of messages) expect({ id: m.messageId, copies: copies(to, m.messageId) }).toEqual({ id: m.messageId, copies: 1 });
  expect(await keys()).toEqual([]);
  expect(recorded()).toEqual({});
});

test("an object delivered but not deleted (S3 refused the delete) is deleted by the next run, not delivered again", async () => {
  const before = counts();
  const m = sesMessage({ to: [CAROL], subject: "undeletable" });
  const [key] = await store(m, [CAROL]);
  intercept = async (ctx) => {
    if (ctx.method !== "DELETE") return false;
    ctx.status = 403;
    ctx.type = "application/xml";
    ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>';
    return true;
  };
  const first = await runImport();
  expect(first.status).toBe(1);
  expect(first.stderr).toMatch(new RegExp(`^mailstack-ses-import: ${escapeRegExp(key)}: S3 refused: .*AccessDenied`, "m"));
  expect(lineOf(first, key)).toEqual([]);
  expect(recorded()).toEqual({ [key]: "delivered" });
  expect(await keys()).toEqual([key]);
  await settle({ ...before, [CAROL]: before[CAROL] + 1 });

  intercept = undefined;
  const second = await runImport();
  expect({ status: second.status, stderr: second.stderr }).toEqual({ status: 0, stderr: "" });
  expect(lineOf(second, key)).toEqual([`mailstack-ses-import: ${key}: delivered by an earlier run; deleted`]);
  expect(await keys()).toEqual([]);
  expect(recorded()).toEqual({});
  await sleep(1000);
  await settle({ ...before, [CAROL]: before[CAROL] + 1 });
  expect(copies(CAROL, m.messageId)).toBe(1);
});

test("what port 25 refuses the import refuses: moved to rejected/, never bounced", async () => {
  const before = counts();
  // GTUBE, refused by rspamd on port 25 first.
  const spam = sesMessage({ to: [ALICE], subject: "gtube", body: `${GTUBE}\n` });
  const onPort25 = await stack.inbound([ALICE], message(`someone@${OUTSIDE_DOMAIN}`, ALICE, "gtube on 25", `${GTUBE}\n`));
  expect(onPort25[2]).toMatch(/\n554 5\.7\.1 Gtube pattern/);
  // A forgery of a domain whose DMARC policy is reject, from a server its SPF does not name.
  const forged = sesMessage({ to: [BOB], subject: "forged", client: { helo: "mx.forger.example", name: "unknown", ip: source(77) } });
  // An address the stack does not have (SES's rules would not take it; a key written by hand).
  const unknown = sesMessage({ to: ["nobody@example.com"], subject: "unknown" });
  // Over messageSizeLimitMiB.
  const big = sesMessage({ to: [BOB], subject: "big", body: `${"x".repeat(76)}\n`.repeat(15000) });
  const stored = [...(await store(spam, [ALICE])), ...(await store(forged, [BOB])), ...(await store(unknown, ["nobody@example.com"])), ...(await store(big, [BOB]))];

  const r = await runImport();
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
  const reasons = [/: 554 5\.7\.1 Gtube pattern/, /: 5\d\d 5\.7\.1 /, /: 550 5\.1\.1 <nobody@example\.com>: Recipient address rejected/, /: 552 5\.3\.4 Message size exceeds fixed limit/];
  stored.forEach((key, i) => {
    const rejected = `${SES_REJECTED_PREFIX}${key.slice(SES_INBOUND_PREFIX.length)}`;
    expect(lineOf(r, key)).toEqual([expect.stringMatching(new RegExp(`: refused, not bounced: .*${reasons[i].source.slice(1)}.*; moved to ${escapeRegExp(rejected)}$`))]);
  });
  expect(await keys(SES_INBOUND_PREFIX)).toEqual([]);
  const rejected = stored.map((key) => `${SES_REJECTED_PREFIX}${key.slice(SES_INBOUND_PREFIX.length)}`);
  expect(await keys(SES_REJECTED_PREFIX)).toEqual([...rejected].sort());
  expect(await get(rejected[0])).toBe(spam.data);
  expect(recorded()).toEqual({});

  // Nothing queued, nothing delivered to anyone, the postmaster included, and no bounce made.
  await sleep(1000);
  expect(stack.queue()).toEqual([]);
  expect(counts()).toEqual(before);
  expect(stack.log("mail")).not.toMatch(/sender non-delivery notification|postfix\/bounce\[/);
  expect(stack.log("rspamd")).toMatch(/DMARC_POLICY_REJECT/);
});

test("a temporary refusal (greylisting) leaves the message for the next run, until Postfix's queue lifetime has passed", async () => {
  const before = counts();
  // An unknown server with no reverse DNS sending for a domain whose SPF fails: greylisted on port 25 too.
  const stranger = { helo: `mx.${OUTSIDE_DOMAIN}`, name: "unknown", ip: source(88) };
  const fresh = sesMessage({ from: `someone@${NO_DMARC_DOMAIN}`, to: [ALICE], subject: "greylisted", client: stranger });
  const stale = sesMessage({ from: `someone@${NO_DMARC_DOMAIN}`, to: [BOB], subject: "greylisted for days", client: stranger });
  const [freshKey] = await store(fresh, [ALICE]);
  const [staleKey] = await store(stale, [BOB], 6);

  const r = await runImport();
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 75, stderr: "" });
  expect(lineOf(r, freshKey)).toEqual([expect.stringMatching(/: deferred for alice@example\.com from unknown\[198\.51\.100\.88\]: 451 4\.7\.1 Try again later; left for the next run$/)]);
  expect(lineOf(r, staleKey)).toEqual([expect.stringMatching(/: refused, not bounced: .*451 4\.7\.1 Try again later; moved to rejected\//)]);
  expect(await keys(SES_INBOUND_PREFIX)).toEqual([freshKey]);
  expect(await get(freshKey)).toBe(fresh.data);
  expect(counts()).toEqual(before);

  // Done with it: the next tests start from an empty inbound/.
  expect((await s3Request("DELETE", objectPath(freshKey))).status).toBe(204);
});

test("while Postfix is down a run leaves every object and fails; once it is back everything arrives once", async () => {
  const before = counts();
  const messages = [sesMessage({ to: [ALICE], subject: "while down 1" }), sesMessage({ to: [BOB], subject: "while down 2" }), sesMessage({ to: [ALICE, BOB], subject: "while down 3" })];
  const stored = [...(await store(messages[0], [ALICE])), ...(await store(messages[1], [BOB])), ...(await store(messages[2], [ALICE, BOB]))];
  const port = () => stack.exec("bash", ["-c", `exec 3<>/dev/tcp/127.0.0.1/${stack.host.env.ports.sesImport}`]).status === 0;
  expect(stack.postfix("stop").status).toBe(0);
  await stack.until("the import port to close", () => !port());
  try {
    const r = await runImport();
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^mailstack-ses-import: inbound\/\S+: left, as is every message after it: cannot connect to Postfix's import service on 127\.0\.0\.1:\d+: /m);
    expect(await keys(SES_INBOUND_PREFIX)).toEqual([...stored].sort());
    expect(recorded()).toEqual({});
  } finally {
    expect(stack.postfix("start").status).toBe(0);
    await stack.until("the import port", port);
  }

  const r = await runImport();
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
  await settle({ ...before, [ALICE]: before[ALICE] + 2, [BOB]: before[BOB] + 2 });
  expect([copies(ALICE, messages[0].messageId), copies(BOB, messages[1].messageId), copies(ALICE, messages[2].messageId), copies(BOB, messages[2].messageId)]).toEqual([1, 1, 1, 1]);
  expect(await keys(SES_INBOUND_PREFIX)).toEqual([]);
});

test("an object SES encrypted on the client side (a receipt rule with a KMS key) is never handed over as ciphertext", async () => {
  const before = counts();
  const m = sesMessage({ to: [ALICE], subject: "sealed" });
  const key = keyOf(ALICE, m);
  // The S3 encryption client's envelope, as SES writes it beside the ciphertext.
  await put(key, randomBytes(600).toString("base64"), 0, { "x-amz-meta-x-amz-key-v2": randomBytes(32).toString("base64"), "x-amz-meta-x-amz-cek-alg": "AES/GCM/NoPadding", "x-amz-meta-x-amz-wrap-alg": "kms" });
  const r = await runImport();
  expect(r.status).toBe(1);
  expect(r.stderr).toBe(`mailstack-ses-import: ${key}: encrypted on the client side (the receipt rule's S3 action has a KMS key): this importer reads only objects that S3 decrypts (the bucket's default encryption); left in place\n`);
  expect(await keys(SES_INBOUND_PREFIX)).toEqual([key]);
  expect(recorded()).toEqual({});
  expect(counts()).toEqual(before);
  expect((await s3Request("DELETE", objectPath(key))).status).toBe(204);
});
