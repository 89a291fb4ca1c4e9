/**
 * The real mailstack-sync.py (Debian's python3 and boto3) against a fake SSM endpoint and a
 * fake S3 endpoint served by this test on 127.0.0.1, fed with the key parameters, manifest and
 * runtime object the core renders for the stack.
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  APP_PASSWORDS_FILE,
  appPasswordKey,
  DEFAULTS_FILE,
  hashPassword,
  HOST_OBJECTS,
  hostFiles,
  hostObjectsPrefix,
  keyFileNames,
  keyParameterName,
  type Manifest,
  type MailConfig,
  type MailConfigInput,
  PARAMETER_LIMIT,
  parseConfig,
  PRODUCTION_ENV,
  runtimeDelivery,
  type RuntimeFileRule,
  runtimeFileTable,
  runtimeFiles,
  type RuntimeFile,
  type RuntimeObjectLocation,
} from "@mailstack/core";
import { type FakeS3, FakeSsm, fakeAws, fakeAwsEnv, SSM_PAGE } from "../support/fake-aws";
import { fullConfig, SAMPLE_HASH } from "../support/fixtures";
import { requireTools, runAsync, type RunResult, TEST_PARAMS, tempRoot, testSesSmtpCredentials } from "../support/tools";

requireTools("python3", "boto3");

const SCRIPT = join(__dirname, "..", "..", "packages", "core", "scripts", "mailstack-sync.py");
const PREFIX = "/mailstack/test/mail";
const BUCKET = "mailstack-backups-test";
/** Where the stack puts the runtime object; the endpoint is the real one, which --s3-endpoint-url overrides. */
const LOCATION: RuntimeObjectLocation = { bucket: BUCKET, key: `${hostObjectsPrefix(PREFIX)}/${HOST_OBJECTS.runtime}`, endpoint: "https://s3.us-east-1.amazonaws.com" };
const OBJECT_PATH = `/${LOCATION.bucket}/${LOCATION.key}`;

/** Puts the runtime object in place in the fake S3, or (undefined) takes it away. */
function putObject(s3: FakeS3, object: string | undefined): void {
  s3.objects.clear();
  if (object !== undefined) s3.objects.set(OBJECT_PATH, Buffer.from(object, "utf8"));
}

// --- the stack's data ---------------------------------------------------------------------
const MANY = 1000;
const pad = (i: number) => String(i).padStart(4, "0");
const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

function manyMailboxes(selector = "mail", count = MANY): MailConfigInput {
  return {
    domain: "example.com",
    extraDomains: ["example.org"],
    mailboxes: Array.from({ length: count }, (_, i) => ({
      address: `user${pad(i)}@example.com`,
      passwordHash: SAMPLE_HASH,
      quota: i % 3 === 0 ? "unlimited" : "2G",
      ...(i % 10 === 0 ? { aliases: [`user${pad(i)}@example.org`] } : {}),
    })),
    aliases: [{ address: "team@example.com", to: Array.from({ length: Math.min(20, count) }, (_, i) => `user${pad(i)}@example.com`) }],
    dkimSelector: selector,
  };
}

const TLS_KEY = generateKeyPairSync("ec", { namedCurve: "P-256", publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "sec1", format: "pem" } }).privateKey;
const KEYS = [0, 1].map(() => generateKeyPairSync("rsa", { modulusLength: 2048, publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } }).privateKey);

/** What one `pulumi up` publishes: the parameters (keys and manifest) and the runtime object. */
interface Published {
  /** Parameter name (full path) to value. */
  parameters: Map<string, string>;
  /** The runtime object's document; undefined: not in S3. */
  object: string | undefined;
}

interface Stack extends Published {
  config: MailConfig;
  files: RuntimeFile[];
  manifest: Manifest;
  object: string;
}

function stack(options: { selector?: string; hashes?: Record<string, string>; key?: number; mailboxes?: number; location?: RuntimeObjectLocation; input?: MailConfigInput } = {}): Stack {
  const config = parseConfig(options.input ?? manyMailboxes(options.selector, options.mailboxes));
  const keys = config.mailboxes.flatMap((m) => [m.address, ...m.appPasswords.map((a) => appPasswordKey(m.address, a.name))]);
  const passwordHashes = new Map(keys.map((key) => [key, options.hashes?.[key] ?? SAMPLE_HASH]));
  const files = runtimeFiles(config, { passwordHashes, dkimPrivateKeyPem: KEYS[options.key ?? 0], tlsPrivateKeyPem: TLS_KEY, resticPassword: "restic sync test passphrase", ldapBindPassword: 'bind #pass "quoted" \\ $x', sesSmtpCredentials: testSesSmtpCredentials("eu-west-1") });
  const delivery = runtimeDelivery(files, options.location ?? LOCATION);
  const parameters = new Map(delivery.parameters.map((p) => [`${PREFIX}/${p.name}`, p.value]));
  parameters.set(`${PREFIX}/manifest`, delivery.manifest);
  return { config, files, manifest: JSON.parse(delivery.manifest) as Manifest, parameters, object: delivery.object };
}

/** A copy to break. */
const copy = (p: Published): Published => ({ parameters: new Map(p.parameters), object: p.object });

/** What a stack publishes with its manifest edited (`edit` may add to the parameters and object too). */
function withManifest(s: Stack, edit: (manifest: Manifest, p: Published) => void): Published {
  const p = copy(s);
  const manifest = JSON.parse(JSON.stringify(s.manifest)) as Manifest;
  edit(manifest, p);
  p.parameters.set(`${PREFIX}/manifest`, JSON.stringify(manifest));
  return p;
}

/**
 * What a stack publishes with one file's content replaced and the manifest's hash with it: all
 * in agreement, as a `pulumi up` whose inputs carried that content would publish it.
 */
function withContent(s: Stack, name: string, content: string): Published {
  return withManifest(s, (manifest, p) => {
    const entry = manifest.files.find((e) => e.name === name)!;
    entry.sha256 = sha256(content);
    if (entry.source === "parameter") {
      p.parameters.set(`${PREFIX}/${keyParameterName(name)}`, content);
    } else {
      const doc = JSON.parse(p.object!) as { files: Record<string, string> };
      doc.files[name] = content;
      p.object = JSON.stringify(doc);
    }
  });
}

// --- one host ------------------------------------------------------------------------------
interface Host {
  root: string;
  dest: string;
  state: string;
  /** The stand-ins, their logs and the table of runtime files: left out of snapshots. */
  tools: string;
  /** The table of runtime files the sync reads, as the host bundle carries it. */
  table: string;
  /** s3: the --s3-endpoint-url (null: none, the manifest's endpoint); env: added to the script's; args: added to its arguments. */
  sync(options?: { s3?: string | null; env?: Record<string, string>; args?: string[] }): Promise<RunResult>;
  reloads(): string[];
  /** The users `doveadm kick` was run for, in order. */
  kicks(): string[];
  /** Reloads and kicks as they happened: "reload <unit>", "kick <user>". */
  events(): string[];
  /** What the stand-in doveadm kick answers from now on: an exit status and a line (default 0). */
  kickAnswers(status: number, line: string): void;
}

function newHost(ssm: FakeSsm, s3: FakeS3): Host {
  const root = tempRoot("ms-sync");
  const dest = join(root, "etc", "mailstack");
  const state = join(root, "var", "lib", "mailstack", "sync-state.json");
  const tools = join(root, "test-tools");
  mkdirSync(tools);
  const log = (name: string) => join(tools, `${name}.log`);
  const reload = join(tools, "reload.sh");
  writeFileSync(reload, `#!/bin/sh\nprintf '%s\\n' "$1" >> ${log("reloads")}\nprintf 'reload %s\\n' "$1" >> ${log("events")}\n`, { mode: 0o755 });
  // doveadm kick as it answers: 0 with the users it kicked, 68 when it found no session, 75
  // when Dovecot is not running (its anvil socket is missing).
  const kick = join(tools, "doveadm-kick.sh");
  const answer = join(tools, "kick-answer");
  writeFileSync(
    kick,
    `#!/bin/sh
printf '%s\\n' "$1" >> ${log("kicks")}
printf 'kick %s\\n' "$1" >> ${log("events")}
if [ -f ${answer} ]; then read -r status line < ${answer}; echo "$line" >&2; exit "$status"; fi
printf 'kicked connections from the following users:\\n%s \\n' "$1"
`,
    { mode: 0o755 },
  );
  // The host bundle's table of runtime files, as the core renders it.
  const table = join(tools, "runtime-files.json");
  writeFileSync(table, runtimeFileTable());
  const lines = (name: string) => (existsSync(log(name)) ? readFileSync(log(name), "utf8").split("\n").filter(Boolean) : []);
  return {
    root,
    dest,
    state,
    tools,
    table,
    sync: (options = {}) => {
      const endpoint = options.s3 === undefined ? s3.endpoint : options.s3;
      return runAsync(
        "/usr/bin/python3",
        [
          // No __pycache__ next to the script.
          "-B",
          SCRIPT,
          "--prefix", PREFIX,
          "--endpoint-url", ssm.endpoint,
          "--region", "us-east-1",
          ...(endpoint === null ? [] : ["--s3-endpoint-url", endpoint]),
          "--dest", dest,
          "--state", state,
          "--runtime-table", table,
          "--no-chown",
          "--reload-command", reload,
          "--kick-command", kick,
          ...(options.args ?? []),
        ],
        {
          env: fakeAwsEnv(root, options.env),
        },
      );
    },
    reloads: () => lines("reloads"),
    kicks: () => lines("kicks"),
    events: () => lines("events"),
    kickAnswers: (status, line) => writeFileSync(answer, `${status} ${line}\n`),
  };
}

/** Everything under the host's root but the test's tools: content, mode, and (runtime files) inode and mtime. */
function snapshot(host: Host): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir).sort()) {
      const path = join(dir, entry);
      const st = lstatSync(path);
      if (path === host.tools) continue;
      if (st.isDirectory()) walk(path);
      else {
        // The script rewrites its own state file on every successful run; only its content counts.
        const identity = path === host.state ? "" : ` ${st.ino} ${st.mtimeMs}`;
        out[path.slice(host.root.length)] = `${sha256(readFileSync(path))} ${(st.mode & 0o7777).toString(8)}${identity}`;
      }
    }
  };
  walk(host.root);
  return out;
}

function expectInstalled(host: Host, s: Stack) {
  for (const f of s.files) {
    const path = join(host.dest, f.name);
    expect({ name: f.name, content: existsSync(path) ? readFileSync(path, "utf8") : null }).toEqual({ name: f.name, content: f.content });
    expect({ name: f.name, mode: (lstatSync(path).mode & 0o7777).toString(8).padStart(4, "0") }).toEqual({ name: f.name, mode: f.mode });
  }
}

const unitsOf = (files: { reload: string[] }[]) => [...new Set(files.flatMap((f) => f.reload))].sort();
/** A fresh host's root after a run that wrote nothing. */
const UNTOUCHED = {};
const DKIM = `${PREFIX}/${keyParameterName("dkim/mail.key")}`;
const NFT_ADMIN = "nftables-admin.nft";
const BACKUP_KEEP = "backup/keep";
// How the script names each grammar's line in its refusals.
const PASSWD = "address:{SCHEME}hash::::::[userdb_quota_rule=*:storage=NM]";
const MAP = "an address or domain, a space, then OK or addresses separated by commas";
const ALIASES = "an address or @domain, a space, then addresses separated by commas";
const ACCESS = "an address, a space, 550 5.2.1, a space, then 1-200 printable characters";
const APP_LINE = "address/imap|pop3|smtp/slot:{SCHEME}hash, or address/app-passwords-only:";
const NFT = "a comment or add element inet mailstack admin_v4|admin_v6 { networks }";

describe("mailstack-sync.py against fake SSM and S3 endpoints", () => {
  const { ssm, s3 } = fakeAws();
  const hosts: Host[] = [];
  const host = () => {
    const h = newHost(ssm, s3);
    hosts.push(h);
    return h;
  };
  /** Puts the parameters in SSM and the object in S3, as a `pulumi up` that declares exactly these would. */
  const publish = (p: Published) => {
    ssm.publish(p.parameters);
    putObject(s3, p.object);
  };
  /** A host in sync with `base`. */
  const inSync = async () => {
    const h = host();
    const r = await h.sync();
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    return h;
  };
  const base = stack();
  // The next `pulumi up`: a changed users file (object) and DKIM key (parameter).
  const next = stack({ hashes: { "user0001@example.com": hashPassword("another good passphrase", "user0001@example.com", PREFIX) }, key: 1 });
  // The `pulumi up` after it: another password hash changed.
  let afterNext: Stack | undefined;
  const third = () => (afterNext ??= stack({ hashes: { "user0002@example.com": hashPassword("a third good passphrase", "user0002@example.com", PREFIX) }, key: 1 }));
  const lines = (text: string) => text.trim().split("\n");

  afterAll(async () => {
    for (const h of hosts) await runAsync("rm", ["-rf", h.root]);
  });
  beforeEach(() => {
    publish(base);
    ssm.requests.length = 0;
    ssm.refuse = false;
    ssm.pageSize = SSM_PAGE;
    s3.requests.length = 0;
    s3.refuse = false;
    s3.cutOff = false;
  });

  test("the data set: each key in a parameter of its own, every other file in the one object", () => {
    const keys = base.files.filter((f) => f.key).map((f) => f.name);
    expect(keys).toEqual(["backup/restic-password", "dkim/mail.key", "tls/key.pem"]);
    expect(keyFileNames(base.config)).toEqual(keys);
    expect([...base.parameters.keys()].sort()).toEqual([...keys.map((k) => `${PREFIX}/files/${k}`), `${PREFIX}/manifest`].sort());
    const inObject = JSON.parse(base.object).files as Record<string, string>;
    expect(Object.keys(inObject).sort()).toEqual(base.files.filter((f) => !f.key).map((f) => f.name).sort());
    expect(base.manifest).toMatchObject({ version: 2, object: LOCATION });
    expect(base.manifest.files.map((e) => [e.name, e.source])).toEqual(base.files.map((f) => [f.name, f.key ? "parameter" : "object"]));
    // Far too large for any parameter: only the object can carry it.
    expect(Buffer.byteLength(inObject.users)).toBeGreaterThan(10 * PARAMETER_LIMIT);
  });

  test("a first sync installs every file byte for byte with its mode, and reloads each unit once", async () => {
    const h = host();
    const r = await h.sync();
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    expectInstalled(h, base);
    // Nothing but the manifest's files (no temporaries left behind).
    const installed = Object.keys(snapshot(h)).filter((p) => p.startsWith("/etc/mailstack/")).map((p) => p.slice("/etc/mailstack/".length)).sort();
    expect(installed).toEqual(base.files.map((f) => f.name).sort());
    expect(h.reloads().sort()).toEqual(unitsOf(base.files));
    expect(unitsOf(base.files)).toEqual(["dovecot.service", "nftables.service", "postfix.service", "rspamd.service"]);
    // The object the manifest names, fetched once, path style from --s3-endpoint-url.
    expect(s3.requests).toEqual([{ path: OBJECT_PATH, style: "path", host: `127.0.0.1:${s3.port}` }]);
  });

  test("1,000 mailboxes arrive intact through the one object, with as many parameters as one mailbox needs", async () => {
    const one = stack({ mailboxes: 1 });
    expect(base.config.mailboxes).toHaveLength(1000);
    expect([...base.parameters.keys()]).toEqual([...one.parameters.keys()]);
    expect(base.parameters.size).toBe(keyFileNames(base.config).length + 1);
    const h = host();
    const r = await h.sync();
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    const users = readFileSync(join(h.dest, "users"));
    expect(sha256(users)).toBe(base.manifest.files.find((e) => e.name === "users")!.sha256);
    const entries = users.toString("utf8").split("\n").filter(Boolean);
    expect(entries.map((l) => l.split(":")[0])).toEqual(base.config.mailboxes.map((m) => m.address));
    expect(entries.every((l) => l.includes(SAMPLE_HASH))).toBe(true);
    expect(readFileSync(join(h.dest, "mailboxes"), "utf8").split("\n").filter(Boolean)).toHaveLength(1000);
    // One page of parameters, one object.
    expect([ssm.requests.length, s3.requests.length]).toEqual([1, 1]);
  });

  test("every page of parameters is fetched: recursive, decrypted, following NextToken to the end", async () => {
    ssm.pageSize = 1;
    const h = host();
    expect((await h.sync()).status).toBe(0);
    expect(ssm.requests.length).toBe(base.parameters.size);
    ssm.requests.forEach((q, i) => {
      expect(q.target).toBe("AmazonSSM.GetParametersByPath");
      expect(q.body).toMatchObject({ Path: PREFIX, Recursive: true, WithDecryption: true });
      expect(q.body.NextToken === undefined).toBe(i === 0);
    });
    expectInstalled(h, base);
  });

  test("without --s3-endpoint-url the object comes from the manifest's endpoint, the bucket in the host name", async () => {
    const elsewhere = stack({ location: { ...LOCATION, endpoint: "http://s3.mail-test.invalid" } });
    publish(elsewhere);
    const h = host();
    // The endpoint's name resolves nowhere: the fake S3 answers as the HTTP proxy in between (SSM, on 127.0.0.1, is reached directly).
    const r = await h.sync({ s3: null, env: { HTTP_PROXY: s3.endpoint, NO_PROXY: "127.0.0.1" } });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    expectInstalled(h, elsewhere);
    expect(s3.requests).toEqual([{ path: OBJECT_PATH, style: "virtual", host: `${BUCKET}.s3.mail-test.invalid` }]);
  });

  test("--s3-endpoint-url is asked path style (GET /<bucket>/<key>) even where the bucket could go in its host name", async () => {
    const h = host();
    // A host name, not 127.0.0.1, for which botocore would take path style anyway.
    const r = await h.sync({ s3: "http://s3-stand-in.invalid", env: { HTTP_PROXY: s3.endpoint, NO_PROXY: "127.0.0.1" } });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    expectInstalled(h, base);
    expect(s3.requests).toEqual([{ path: OBJECT_PATH, style: "path", host: "s3-stand-in.invalid" }]);
  });

  test("a second sync with nothing new changes nothing, reloads nothing and does not download the object", async () => {
    const h = await inSync();
    const before = snapshot(h);
    const reloadsBefore = h.reloads();
    s3.requests.length = 0;
    const r = await h.sync();
    expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: "", stderr: "" });
    expect(snapshot(h)).toEqual(before);
    expect(h.reloads()).toEqual(reloadsBefore);
    expect(s3.requests).toEqual([]);
  });

  test("a file of the object changed on the host is put back from the object", async () => {
    const h = await inSync();
    const before = snapshot(h);
    const users = join(h.dest, "users");
    writeFileSync(users, "mallory@example.com:{PLAIN}secret::::::\n");
    const marker = h.reloads().length;
    s3.requests.length = 0;
    const r = await h.sync();
    expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({
      status: 0,
      stdout: "mailstack-sync: updated users\nmailstack-sync: reloading dovecot.service\nmailstack-sync: ending the sessions of mallory@example.com\n",
      stderr: "",
    });
    expectInstalled(h, base);
    expect(h.reloads().slice(marker)).toEqual(["dovecot.service"]);
    // The user planted on the host loses the sessions it may have opened.
    expect(h.kicks()).toEqual(["mallory@example.com"]);
    expect(s3.requests.map((q) => q.path)).toEqual([OBJECT_PATH]);
    const after = snapshot(h);
    expect(Object.keys(after).filter((k) => after[k] !== before[k])).toEqual(["/etc/mailstack/users"]);
  });

  test("a changed password hash rewrites only the users file and reloads only Dovecot", async () => {
    const h = await inSync();
    const before = snapshot(h);
    const changed = stack({ hashes: { "user0007@example.com": hashPassword("a brand new passphrase", "user0007@example.com", PREFIX) } });
    // Only the object and the manifest change.
    expect([...changed.parameters].filter(([k, v]) => base.parameters.get(k) !== v).map(([k]) => k)).toEqual([`${PREFIX}/manifest`]);
    publish(changed);
    const marker = h.reloads().length;
    const r = await h.sync();
    expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({
      status: 0,
      stdout: "mailstack-sync: updated users\nmailstack-sync: reloading dovecot.service\nmailstack-sync: ending the sessions of user0007@example.com\n",
      stderr: "",
    });
    expectInstalled(h, changed);
    expect(h.kicks()).toEqual(["user0007@example.com"]);
    expect(h.reloads().slice(marker)).toEqual(["dovecot.service"]);
    const after = snapshot(h);
    const differing = Object.keys(after).filter((k) => after[k] !== before[k]).sort();
    expect(differing).toEqual(["/etc/mailstack/users"]);
  });

  test("a new DKIM key (a parameter) rewrites only the key and reloads only rspamd", async () => {
    const h = await inSync();
    const before = snapshot(h);
    const changed = stack({ key: 1 });
    expect(changed.object).toBe(base.object);
    publish(changed);
    const marker = h.reloads().length;
    s3.requests.length = 0;
    const r = await h.sync();
    expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: "mailstack-sync: updated dkim/mail.key\nmailstack-sync: reloading rspamd.service\n", stderr: "" });
    expectInstalled(h, changed);
    expect(h.reloads().slice(marker)).toEqual(["rspamd.service"]);
    const after = snapshot(h);
    expect(Object.keys(after).filter((k) => after[k] !== before[k])).toEqual(["/etc/mailstack/dkim/mail.key"]);
    // Every file of the object is installed as the manifest says: no download.
    expect(s3.requests).toEqual([]);
  });

  test("a file dropped from the manifest is deleted and its readers reloaded", async () => {
    const h = await inSync();
    expect(existsSync(join(h.dest, "dkim", "mail.key"))).toBe(true);
    const renamed = stack({ selector: "s2026" });
    expect(renamed.files.map((f) => f.name)).not.toContain("dkim/mail.key");
    publish(renamed);
    const before = h.reloads().length;
    const r = await h.sync();
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("-dkim/mail.key");
    expect(existsSync(join(h.dest, "dkim", "mail.key"))).toBe(false);
    expectInstalled(h, renamed);
    expect(h.reloads().slice(before)).toEqual(["rspamd.service"]);
    const state = JSON.parse(readFileSync(h.state, "utf8")).files as Record<string, string[]>;
    expect(Object.keys(state).sort()).toEqual(renamed.files.map((f) => f.name).sort());
    expect(state["dkim/s2026.key"]).toEqual(["rspamd.service"]);
  });

  test("a file whose mode was changed on the host gets its mode back, content untouched", async () => {
    const h = await inSync();
    const users = join(h.dest, "users");
    chmodSync(users, 0o644);
    const before = h.reloads().length;
    expect((await h.sync()).status).toBe(0);
    expect(statSync(users).mode & 0o7777).toBe(0o640);
    expect(readFileSync(users, "utf8")).toBe(base.files.find((f) => f.name === "users")!.content);
    expect(h.reloads().slice(before)).toEqual(["dovecot.service"]);
    // The same users with the same passwords: no session ends.
    expect(h.kicks()).toEqual([]);
  });

  describe("parameters and object that do not agree with the manifest: exit 75, nothing written", () => {
    // Each case breaks what one `pulumi up` published (`p`) with what another one (`other`) did.
    const cases: [string, (p: Published, other: Stack) => void, string][] = [
      ["a key whose parameter is missing", (p) => p.parameters.delete(DKIM), "not installing: dkim/mail.key: its parameter is missing; will retry"],
      ["no manifest", (p) => p.parameters.delete(`${PREFIX}/manifest`), "not installing: no manifest parameter yet; will retry"],
      ["a key from another `pulumi up`", (p, other) => p.parameters.set(DKIM, other.parameters.get(DKIM)!), "not installing: dkim/mail.key does not match the manifest; will retry"],
      ["the object from another `pulumi up`", (p, other) => (p.object = other.object), "not installing: users does not match the manifest; will retry"],
      [
        "an object with one mailbox's hash changed",
        (p) => {
          const doc = JSON.parse(p.object!) as { files: Record<string, string> };
          const at = doc.files.users.indexOf("{BLF-CRYPT}", doc.files.users.length >> 1);
          doc.files.users = doc.files.users.slice(0, at) + "{BLF-CRYPX}" + doc.files.users.slice(at + 11);
          p.object = JSON.stringify(doc);
        },
        "not installing: users does not match the manifest; will retry",
      ],
      [
        "an object without a file the manifest names",
        (p) => {
          const doc = JSON.parse(p.object!) as { files: Record<string, string> };
          delete doc.files.users;
          p.object = JSON.stringify(doc);
        },
        "not installing: users is not in the runtime object; will retry",
      ],
      [
        "a manifest whose digest is for other content",
        (p) => {
          const manifest = JSON.parse(p.parameters.get(`${PREFIX}/manifest`)!) as Manifest;
          manifest.files[0].sha256 = "0".repeat(64);
          p.parameters.set(`${PREFIX}/manifest`, JSON.stringify(manifest));
        },
        "not installing: aliases does not match the manifest; will retry",
      ],
      ["the object not in S3 yet (404 NoSuchKey)", (p) => (p.object = undefined), "the runtime files are not in S3 yet; will retry"],
    ];

    test.each(cases)("%s, on a host already in sync", async (_label, breakIt, message) => {
      const h = await inSync();
      const before = snapshot(h);
      const reloadsBefore = h.reloads();
      const published = copy(next);
      breakIt(published, base);
      publish(published);
      const r = await h.sync();
      expect({ status: r.status, stdout: r.stdout, stderr: lines(r.stderr) }).toEqual({ status: 75, stdout: "", stderr: [`mailstack-sync: ${message}`] });
      expect(snapshot(h)).toEqual(before);
      expect(h.reloads()).toEqual(reloadsBefore);
    });

    test.each(cases)("%s, on a fresh host", async (_label, breakIt, message) => {
      const h = host();
      const published = copy(base);
      breakIt(published, next);
      publish(published);
      const r = await h.sync();
      expect({ status: r.status, stdout: r.stdout, stderr: lines(r.stderr) }).toEqual({ status: 75, stdout: "", stderr: [`mailstack-sync: ${message}`] });
      expect(snapshot(h)).toEqual(UNTOUCHED);
      expect(h.reloads()).toEqual([]);
    });
  });

  test.each([
    // The manifest and keys of the next up beside the object of the one after it.
    ["a newer", () => ({ parameters: next.parameters, object: third().object }), third],
    // The manifest and keys of the next up beside the object as it was before it.
    ["an older", () => ({ parameters: next.parameters, object: base.object }), () => next],
  ] as const)("an object from %s `pulumi up` than the manifest: exit 75, nothing installed; installed once both agree", async (_label, mismatched, agreed) => {
    const h = await inSync();
    const before = snapshot(h);
    publish(mismatched());
    const r = await h.sync();
    expect({ status: r.status, stderr: lines(r.stderr) }).toEqual({ status: 75, stderr: ["mailstack-sync: not installing: users does not match the manifest; will retry"] });
    expect(snapshot(h)).toEqual(before);
    const marker = h.reloads().length;
    publish(agreed());
    const r2 = await h.sync();
    expect({ status: r2.status, stderr: r2.stderr }).toEqual({ status: 0, stderr: "" });
    expectInstalled(h, agreed());
    expect(h.reloads().slice(marker)).toEqual(["dovecot.service", "rspamd.service"]);
  });

  test("a sync at each step of a `pulumi up` (keys, then object, then manifest) installs nothing until the manifest is written", async () => {
    const h = await inSync();
    const before = snapshot(h);
    const keys = { parameters: new Map([...next.parameters].map(([k, v]) => [k, k.endsWith("/manifest") ? base.parameters.get(k)! : v])), object: base.object };
    for (const step of [keys, { ...keys, object: next.object }]) {
      publish(step);
      const r = await h.sync();
      expect({ status: r.status, stderr: lines(r.stderr) }).toEqual({ status: 75, stderr: ["mailstack-sync: not installing: dkim/mail.key does not match the manifest; will retry"] });
      expect(snapshot(h)).toEqual(before);
    }
    publish(next);
    const marker = h.reloads().length;
    const r = await h.sync();
    expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({
      status: 0,
      stdout: "mailstack-sync: updated dkim/mail.key, users\nmailstack-sync: reloading dovecot.service\nmailstack-sync: reloading rspamd.service\nmailstack-sync: ending the sessions of user0001@example.com\n",
      stderr: "",
    });
    expectInstalled(h, next);
    expect(h.reloads().slice(marker)).toEqual(["dovecot.service", "rspamd.service"]);
  });

  test("the object not in S3 yet: exit 75 with one line, then installed once it is there", async () => {
    const h = host();
    putObject(s3, undefined);
    const r = await h.sync();
    expect({ status: r.status, stderr: lines(r.stderr) }).toEqual({ status: 75, stderr: ["mailstack-sync: the runtime files are not in S3 yet; will retry"] });
    expect(s3.requests.map((q) => q.path)).toEqual([OBJECT_PATH]);
    expect(snapshot(h)).toEqual(UNTOUCHED);
    putObject(s3, base.object);
    expect((await h.sync()).status).toBe(0);
    expectInstalled(h, base);
  });

  test("S3 refusing access (403 AccessDenied): exit 1 with one line that names the error, nothing written", async () => {
    const h = await inSync();
    const before = snapshot(h);
    publish(next);
    s3.refuse = true;
    const r = await h.sync();
    expect({ status: r.status, stdout: r.stdout, stderr: lines(r.stderr) }).toEqual({
      status: 1,
      stdout: "",
      stderr: ["mailstack-sync: S3 refused the runtime files: An error occurred (AccessDenied) when calling the GetObject operation: Access Denied"],
    });
    expect(snapshot(h)).toEqual(before);
  });

  test("the object cut off mid-download: exit 75 (retried) with one line, nothing written", async () => {
    const h = await inSync();
    const before = snapshot(h);
    publish(next);
    s3.cutOff = true;
    const r = await h.sync();
    expect({ status: r.status, stdout: r.stdout, stderr: lines(r.stderr) }).toEqual({
      status: 75,
      stdout: "",
      stderr: [expect.stringMatching(/^mailstack-sync: cannot download the runtime files: .+; will retry$/)],
    });
    expect(snapshot(h)).toEqual(before);
  });

  test.each([1, 3])("a version %d manifest: exit 75 with one line naming the version, nothing written, S3 not asked", async (version) => {
    const h = await inSync();
    const before = snapshot(h);
    const users = next.files.find((f) => f.name === "users")!;
    const parameters = new Map(next.parameters);
    if (version === 1) {
      // The old format: files split into parts, `files/<name>/<index>`, each with a header.
      const entry = { name: "users", parts: 1, sha256: sha256(users.content), mode: users.mode, owner: users.owner, group: users.group, reload: users.reload };
      parameters.set(`${PREFIX}/manifest`, JSON.stringify({ version: 1, files: [entry] }));
      parameters.set(`${PREFIX}/files/users/0`, `# mailstack users 1/1\n${users.content}`);
    } else {
      parameters.set(`${PREFIX}/manifest`, JSON.stringify({ ...next.manifest, version: 3 }));
    }
    publish({ parameters, object: next.object });
    const r = await h.sync();
    expect({ status: r.status, stdout: r.stdout, stderr: lines(r.stderr) }).toEqual({
      status: 75,
      stdout: "",
      stderr: [`mailstack-sync: not installing: manifest version ${version} is not the one this script reads (2); will retry`],
    });
    expect(snapshot(h)).toEqual(before);
    expect(s3.requests.length).toBe(1); // the sync that set the host up
  });

  test("SSM unreachable: exit 75 (retried) with one line that says so, nothing written", async () => {
    const h = newHost(Object.assign(new FakeSsm(), { port: 1 }), s3);
    hosts.push(h);
    const r = await h.sync();
    expect({ status: r.status, stderr: lines(r.stderr) }).toEqual({
      status: 75,
      stderr: [expect.stringMatching(/^mailstack-sync: cannot read \/.* from SSM: Could not connect to the endpoint URL: .*; will retry$/)],
    });
    expect(snapshot(h)).toEqual(UNTOUCHED);
    expect(s3.requests).toEqual([]);
  });

  test("SSM refusing access: exit 1 (a fault, not retried quietly) with one line that names the error", async () => {
    const h = host();
    ssm.refuse = true;
    const r = await h.sync();
    expect({ status: r.status, stderr: lines(r.stderr) }).toEqual({
      status: 1,
      stderr: [expect.stringMatching(/^mailstack-sync: SSM refused reading \/.*AccessDeniedException.*$/)],
    });
    expect(snapshot(h)).toEqual(UNTOUCHED);
    expect(s3.requests).toEqual([]);
  });

  describe("sessions do not outlive their password: users a new users file drops or gives another hash are kicked", () => {
    const newPassword = (address: string) => hashPassword(`a new passphrase for ${address}`, address, PREFIX);
    /** A mailbox fewer (user0999 goes) and user0003's password changed. */
    let changed: Stack | undefined;
    const changes = () => (changed ??= stack({ mailboxes: MANY - 1, hashes: { "user0003@example.com": newPassword("user0003@example.com") } }));

    test("a changed password and a removed mailbox: those users' sessions end after Dovecot's reload, and no one else's", async () => {
      const h = await inSync();
      const marker = h.events().length;
      publish(changes());
      const r = await h.sync();
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
      expect(lines(r.stdout).at(-1)).toBe("mailstack-sync: ending the sessions of user0003@example.com, user0999@example.com");
      expectInstalled(h, changes());
      // Dovecot's reload empties its authentication cache first; then each user once.
      expect(h.events().slice(marker)).toEqual(["reload dovecot.service", "reload postfix.service", "kick user0003@example.com", "kick user0999@example.com"]);
    });

    test("a disabled mailbox: its sessions end as a removed one's, Postfix gets its refusal; enabled again, no one's end", async () => {
      const h = await inSync();
      const input = manyMailboxes();
      input.mailboxes[5] = { ...input.mailboxes[5], enabled: false, disabledReply: "User five has left; write to team@example.com" };
      const disabled = stack({ input });
      let marker = h.events().length;
      publish(disabled);
      const r = await h.sync();
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
      expect(lines(r.stdout)[0]).toBe("mailstack-sync: updated aliases, mailboxes, recipient-access, sender-logins, users");
      expectInstalled(h, disabled);
      expect(readFileSync(join(h.dest, "recipient-access"), "utf8")).toBe("user0005@example.com 550 5.2.1 User five has left; write to team@example.com\n");
      expect(h.events().slice(marker)).toEqual(["reload dovecot.service", "reload postfix.service", "kick user0005@example.com"]);
      // Enabled again: its users line is back as it was, so nobody's session ends.
      marker = h.events().length;
      publish(base);
      const again = await h.sync();
      expect({ status: again.status, stderr: again.stderr }).toEqual({ status: 0, stderr: "" });
      expectInstalled(h, base);
      expect(h.events().slice(marker)).toEqual(["reload dovecot.service", "reload postfix.service"]);
    });

    test("app passwords: one revoked or changed, or the mailbox's own password refused, ends that mailbox's sessions; one added ends none", async () => {
      const appHash = (key: string) => hashPassword(`app password of ${key}`, key, PREFIX);
      const withApps = (edit: (mailboxes: MailConfigInput["mailboxes"]) => void) => {
        const input = manyMailboxes();
        input.mailboxes[1] = { ...input.mailboxes[1], appPasswords: [{ name: "phone", passwordHash: SAMPLE_HASH }, { name: "laptop", passwordHash: SAMPLE_HASH }] };
        input.mailboxes[2] = { ...input.mailboxes[2], appPasswords: [{ name: "phone", passwordHash: SAMPLE_HASH, services: ["submission"] }] };
        input.mailboxes[3] = { ...input.mailboxes[3], appPasswords: [{ name: "tablet", passwordHash: SAMPLE_HASH }] };
        input.mailboxes[4] = { ...input.mailboxes[4], appPasswords: [{ name: "phone", passwordHash: SAMPLE_HASH }] };
        edit(input.mailboxes);
        return input;
      };
      const before = stack({ input: withApps(() => {}) });
      const h = await inSync();
      publish(before);
      expect((await h.sync()).status).toBe(0);
      expect(h.kicks()).toEqual([]);
      expect(readFileSync(join(h.dest, "app-passwords"), "utf8")).toBe(before.files.find((f) => f.name === "app-passwords")!.content);
      const after = stack({
        input: withApps((mailboxes) => {
          // user0001's laptop revoked; user0002 gets a second one; user0003 now refuses its own password.
          mailboxes[1].appPasswords = [mailboxes[1].appPasswords![0]];
          mailboxes[2].appPasswords = [...mailboxes[2].appPasswords!, { name: "laptop", passwordHash: SAMPLE_HASH }];
          mailboxes[3].requireAppPasswords = true;
        }),
        hashes: { "user0004@example.com/phone": appHash("user0004@example.com/phone") },
      });
      const marker = h.events().length;
      publish(after);
      const r = await h.sync();
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
      expect(lines(r.stdout)[0]).toBe("mailstack-sync: updated app-passwords");
      expectInstalled(h, after);
      // user0004's app password changed its hash.
      expect(h.events().slice(marker)).toEqual(["reload dovecot.service", "kick user0001@example.com", "kick user0003@example.com", "kick user0004@example.com"]);
    });

    test("a new mailbox (every other user as before) ends no session", async () => {
      const h = await inSync();
      publish(stack({ mailboxes: MANY + 1 }));
      const r = await h.sync();
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
      expect(lines(r.stdout)[0]).toBe("mailstack-sync: updated aliases, mailboxes, sender-logins, users");
      expect(h.kicks()).toEqual([]);
    });

    test("doveadm finding no session to end (68) is no problem: every user is tried, nothing said", async () => {
      const h = await inSync();
      h.kickAnswers(68, "no users kicked");
      publish(changes());
      const r = await h.sync();
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
      expect(h.kicks()).toEqual(["user0003@example.com", "user0999@example.com"]);
    });

    test("Dovecot stopped (doveadm cannot reach it): one line says so, the files are installed, the sync succeeds", async () => {
      const h = await inSync();
      h.kickAnswers(75, "Fatal: net_connect_unix(/run/dovecot/anvil) failed: No such file or directory");
      publish(changes());
      const r = await h.sync();
      expect({ status: r.status, stderr: lines(r.stderr) }).toEqual({
        status: 0,
        stderr: ["mailstack-sync: cannot end the sessions of user0003@example.com: Fatal: net_connect_unix(/run/dovecot/anvil) failed: No such file or directory; Dovecot may be stopped, not trying the others"],
      });
      expectInstalled(h, changes());
      expect(h.kicks()).toEqual(["user0003@example.com"]);
    });

    test("no doveadm at all: one line, the sync succeeds", async () => {
      const h = await inSync();
      publish(changes());
      const r = await h.sync({ args: ["--kick-command", join(h.tools, "no-such-doveadm")] });
      expect({ status: r.status, stderr: lines(r.stderr) }).toEqual({
        status: 0,
        stderr: [expect.stringMatching(/^mailstack-sync: cannot end the sessions of user0003@example\.com: \[Errno 2\] No such file or directory: .*no-such-doveadm'$/)],
      });
      expectInstalled(h, changes());
    });

    test("at boot (--no-reload), before Dovecot runs, no session is ended", async () => {
      const h = await inSync();
      publish(changes());
      const r = await h.sync({ args: ["--no-reload"] });
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
      expectInstalled(h, changes());
      expect(h.kicks()).toEqual([]);
    });

    test("names in a users file edited on the host that doveadm would read as an option or a user mask are not passed to it", async () => {
      const h = await inSync();
      const users = join(h.dest, "users");
      writeFileSync(users, `${readFileSync(users, "utf8")}*:{PLAIN}x::::::\n-a/tmp/anvil:{PLAIN}y::::::\nuser*@example.com:{PLAIN}z::::::\nmallory@example.com:{PLAIN}w::::::\n`);
      const r = await h.sync();
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
      expectInstalled(h, base);
      expect(h.kicks()).toEqual(["mallory@example.com"]);
    });
  });

  describe("runtime inputs the host's table does not allow: the whole update refused with one line (exit 1), the previous files kept", () => {
    const entry = (m: Manifest, name: string) => m.files.find((e) => e.name === name)!;
    const object = (p: Published) => JSON.parse(p.object!) as { files: Record<string, string> };
    // Each on top of `next`, which changes the users file and the DKIM key: none of that is installed either.
    const manifests: [string, () => Published, string][] = [
      [
        "a file the table does not name",
        () =>
          withManifest(next, (m, p) => {
            m.files.push({ ...entry(m, "aliases"), name: "evil", sha256: sha256("owned\n") });
            p.object = JSON.stringify({ files: { ...object(p).files, evil: "owned\n" } });
          }),
        "'evil' is not a runtime file this host installs",
      ],
      [
        "../etc/shadow",
        () =>
          withManifest(next, (m, p) => {
            m.files.push({ ...entry(m, "backup/restic-password"), name: "../etc/shadow", sha256: sha256("root::0:0:99999:7:::\n") });
            p.parameters.set(`${PREFIX}/${keyParameterName("../etc/shadow")}`, "root::0:0:99999:7:::\n");
          }),
        "refusing unsafe file name '../etc/shadow'",
      ],
      ["a setuid mode (4755)", () => withManifest(next, (m) => (entry(m, "aliases").mode = "4755")), "aliases: mode '4755', where this host's table says '0644'"],
      ["a mode open to everyone for a key (0644)", () => withManifest(next, (m) => (entry(m, "tls/key.pem").mode = "0644")), "tls/key.pem: mode '0644', where this host's table says '0600'"],
      ["Dovecot's users file owned by root's group, not dovecot's", () => withManifest(next, (m) => (entry(m, "users").group = "root")), "users: group 'root', where this host's table says 'dovecot'"],
      ["Dovecot's users file owned by dovecot", () => withManifest(next, (m) => (entry(m, "users").owner = "dovecot")), "users: owner 'dovecot', where this host's table says 'root'"],
      ["a reload of ssh.service", () => withManifest(next, (m) => (entry(m, NFT_ADMIN).reload = ["ssh.service"])), `${NFT_ADMIN}: reload ['ssh.service'], where this host's table says ['nftables.service']`],
      ["one unit more to reload", () => withManifest(next, (m) => entry(m, "aliases").reload.push("ssh.service")), "aliases: reload ['postfix.service', 'ssh.service'], where this host's table says ['postfix.service']"],
      [
        "a key from the object instead of its SecureString parameter",
        () =>
          withManifest(next, (m, p) => {
            entry(m, "dkim/mail.key").source = "object";
            p.object = JSON.stringify({ files: { ...object(p).files, "dkim/mail.key": p.parameters.get(DKIM)! } });
          }),
        "dkim/mail.key: from the object, where this host's table says its parameter",
      ],
      ["a DKIM key whose selector is no DNS label", () => withManifest(next, (m) => (entry(m, "dkim/mail.key").name = "dkim/mail.key.d/x.key")), "'dkim/mail.key.d/x.key' is not a runtime file this host installs"],
      [
        "a file listed twice",
        () => withManifest(next, (m) => m.files.push({ ...entry(m, "users") })),
        "users is listed twice",
      ],
    ];

    const usersOf = (s: Stack) => s.files.find((f) => f.name === "users")!.content;
    const contents: [string, string, () => string, string][] = [
      [
        "a users line with uid and gid 0",
        "users",
        () => usersOf(next).replace(/^(user0004@example\.com:[^:]+):/m, "$1:0:0"),
        `users line 5 is not ${PASSWD}`,
      ],
      [
        "a users line with an extra field",
        "users",
        () => usersOf(next).replace(/^(user0002@example\.com:.*)$/m, "$1 userdb_home=/root"),
        `users line 3 is not ${PASSWD}`,
      ],
      [
        "an extra users line, as a hash with a line break would add",
        "users",
        () => usersOf(next).replace(/^(user0000@example\.com:[^:]+)/m, "$1::::::\nmallory@example.com:{PLAIN}x::::::nopassword=y\nx"),
        `users line 2 is not ${PASSWD}`,
      ],
      ["a users file that does not end its last line", "users", () => usersOf(next).slice(0, -1), `users line ${MANY} does not end in a newline`],
      [
        "an app password line with extra fields (a second users file)",
        APP_PASSWORDS_FILE,
        () => `user0001@example.com/imap/1:${SAMPLE_HASH}::::::userdb_home=/root\n`,
        `${APP_PASSWORDS_FILE} line 1 is not ${APP_LINE}`,
      ],
      ["an app password keyed by the bare login", APP_PASSWORDS_FILE, () => `user0001@example.com:${SAMPLE_HASH}\n`, `${APP_PASSWORDS_FILE} line 1 is not ${APP_LINE}`],
      ["an app password for another Dovecot service", APP_PASSWORDS_FILE, () => `user0001@example.com/doveadm/1:${SAMPLE_HASH}\n`, `${APP_PASSWORDS_FILE} line 1 is not ${APP_LINE}`],
      ["an app password without a scheme", APP_PASSWORDS_FILE, () => `user0001@example.com/imap/1:secret\n`, `${APP_PASSWORDS_FILE} line 1 is not ${APP_LINE}`],
      ["a deny line that carries a password", APP_PASSWORDS_FILE, () => `user0001@example.com/app-passwords-only:{PLAIN}x\n`, `${APP_PASSWORDS_FILE} line 1 is not ${APP_LINE}`],
      ["an app password of no address", APP_PASSWORDS_FILE, () => `*/imap/1:${SAMPLE_HASH}\n`, `${APP_PASSWORDS_FILE} line 1 is not ${APP_LINE}`],
      ["an alias to a command", "aliases", () => `team@example.com |/bin/sh -c id\n`, `aliases line 1 is not ${ALIASES}`],
      ["a catch-all to a command", "aliases", () => `user0000@example.com user0000@example.com\n@example.com |/bin/sh\n`, `aliases line 2 is not ${ALIASES}`],
      ["a catch-all of no domain", "aliases", () => `@-example.com user0000@example.com\n`, `aliases line 1 is not ${ALIASES}`],
      ["a catch-all of a numeric name", "aliases", () => `@192.0.2.1 user0000@example.com\n`, `aliases line 1 is not ${ALIASES}`],
      ["an alias map entry that accepts anything (OK)", "aliases", () => `team@example.com OK\n`, `aliases line 1 is not ${ALIASES}`],
      ["an access entry that permits", "recipient-access", () => "user0005@example.com 550 5.2.1 gone\nuser0006@example.com OK\n", `recipient-access line 2 is not ${ACCESS}`],
      ["an access entry that redirects mail", "recipient-access", () => "user0005@example.com REDIRECT mallory@example.net\n", `recipient-access line 1 is not ${ACCESS}`],
      ["an access entry with another reply code", "recipient-access", () => "user0005@example.com 450 4.2.1 later\n", `recipient-access line 1 is not ${ACCESS}`],
      ["an access entry for a whole domain", "recipient-access", () => "example.com 550 5.2.1 gone\n", `recipient-access line 1 is not ${ACCESS}`],
      ["an access entry with a tab in its text", "recipient-access", () => "user0005@example.com 550 5.2.1 gone\tPREPEND x\n", `recipient-access line 1 is not ${ACCESS}`],
      ["an access entry with too long a text", "recipient-access", () => `user0005@example.com 550 5.2.1 ${"x".repeat(201)}\n`, `recipient-access line 1 is not ${ACCESS}`],
      ["a map line that continues the one before (leading space)", "domains", () => "example.com OK\n example.org OK\n", `domains line 2 is not ${MAP}`],
      ["a sender login for a whole domain", "sender-logins", () => "user0000@example.com user0000@example.com\n@example.com user0000@example.com\n", `sender-logins line 2 is not ${MAP}`],
      ["a keep line that runs a program", BACKUP_KEEP, () => "--keep-daily=7\n--option=rclone.program=/bin/sh\n", `${BACKUP_KEEP} line 2 is not --keep-(last|hourly|daily|weekly|monthly|yearly)=N`],
      ["a keep line with a second option", BACKUP_KEEP, () => "--keep-daily=7 --prune\n", `${BACKUP_KEEP} line 1 is not --keep-(last|hourly|daily|weekly|monthly|yearly)=N`],
      ["a firewall file that flushes the ruleset", NFT_ADMIN, () => "# Sources\nflush ruleset\n", `${NFT_ADMIN} line 2 is not ${NFT}`],
      ["SSH open to the whole internet", NFT_ADMIN, () => "add element inet mailstack admin_v4 { 0.0.0.0/0 }\n", `${NFT_ADMIN} line 1 is not ${NFT}`],
      ["an IPv6 network in the IPv4 set", NFT_ADMIN, () => "add element inet mailstack admin_v4 { 2001:db8::/48 }\n", `${NFT_ADMIN} line 1 is not ${NFT}`],
      ["a certificate name with a shell command", "certificate-names", () => "mail.example.com\nmail.example.com;reboot\n", "certificate-names line 2 is not a domain name"],
      ["a DKIM selector map with a path", "dkim-selectors", () => "example.com ../../../etc/passwd\n", "dkim-selectors line 1 is not a domain, a space, a selector"],
      ["a DKIM key that is no PEM block", "dkim/mail.key", () => "not a key\n", "dkim/mail.key line 1 is not the -----BEGIN of a PEM block"],
      ["a TLS key with something after its PEM block", "tls/key.pem", () => `${TLS_KEY}ssl_certificate /etc/shadow;\n`, `tls/key.pem line ${TLS_KEY.split("\n").length} is not the -----BEGIN of a PEM block`],
      ["a restic password of two lines", "backup/restic-password", () => "first\nsecond\n", "backup/restic-password line 2 must be the one line of the password"],
    ];

    const refused = async (published: Published, message: string) => {
      const h = await inSync();
      const before = snapshot(h);
      const reloadsBefore = h.reloads();
      publish(published);
      s3.requests.length = 0;
      const r = await h.sync();
      expect({ status: r.status, stdout: r.stdout, stderr: lines(r.stderr) }).toEqual({ status: 1, stdout: "", stderr: [`mailstack-sync: not installing the runtime files: ${message}`] });
      expect(snapshot(h)).toEqual(before);
      expect(h.reloads()).toEqual(reloadsBefore);
      return h;
    };

    test.each(manifests)("%s: refused before anything is downloaded", async (_label, published, message) => {
      await refused(published(), message);
      expect(s3.requests).toEqual([]);
    });

    test.each(contents)("%s", async (_label, name, content, message) => {
      const text = content();
      // The grammar refuses the file itself, not a mismatch: the manifest's hash is the file's.
      expect(text).not.toBe(next.files.find((f) => f.name === name)!.content);
      await refused(withContent(next, name, text), message);
    });

    test("a refused update is installed once the stack publishes a good one", async () => {
      const h = await refused(withContent(next, BACKUP_KEEP, "--option=rclone.program=/bin/sh\n"), `${BACKUP_KEEP} line 1 is not --keep-(last|hourly|daily|weekly|monthly|yearly)=N`);
      publish(next);
      const r = await h.sync();
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
      expectInstalled(h, next);
    });
  });

  test("the table the host bundle carries is the core's, names every runtime file of a full config with its mode, owner and units, and the sync takes them all", async () => {
    const input = fullConfig();
    input.adminCidrs = ["203.0.113.0/24", "198.51.100.7/32", "2001:db8::/48"];
    input.dkimSelector = "s2026-a";
    input.backupKeep = { daily: 3, weekly: 0, monthly: 24 };
    // A disabled mailbox (the recipient access map has an entry) and catch-alls (@domain keys in the aliases).
    input.mailboxes.push({ address: "carol@example.com", passwordHash: SAMPLE_HASH, enabled: false, disabledReply: "Carol has left; write to info@example.com (or call)", aliases: ["carol@example.org"] });
    input.catchAll = { "example.org": "info@example.com", "example.com": "bob@example.com" };
    // Users from a directory for a domain without a catch-all: the two LDAP key files.
    input.extraDomains = [...(input.extraDomains ?? []), "example.net"];
    input.ldap = { url: "ldaps://ldap.example.net", bindDn: "cn=mail,dc=example,dc=net", bindPassword: "unused here", baseDn: "ou=people,dc=example,dc=net", domains: ["example.net"] };
    // The SES relay's credentials, the one key file only sesOutbound delivers.
    input.sesOutbound = true;
    input.sesRegion = "eu-west-1";
    const full = stack({ input });
    const files = hostFiles(full.config, TEST_PARAMS);
    const carried = files.find((f) => f.path === PRODUCTION_ENV.paths.runtimeTable)!;
    expect(carried).toMatchObject({ mode: "0644", owner: "root:root", content: runtimeFileTable() });
    expect(files.find((f) => f.path === DEFAULTS_FILE)!.content).toContain(`\nMAILSTACK_RUNTIME_TABLE="${PRODUCTION_ENV.paths.runtimeTable}"\n`);
    const table = JSON.parse(carried.content) as { version: number; files: RuntimeFileRule[] };
    expect(table.version).toBe(1);
    // Each file of the config has one rule, exact or by its family's pattern, that says what runtimeFiles did.
    for (const f of full.files) {
      const rules = table.files.filter((r) => (r.pattern === undefined ? r.name === f.name : new RegExp(`^(?:${r.pattern})$`).test(f.name)));
      expect({ name: f.name, rules: rules.map((r) => ({ mode: r.mode, owner: r.owner, group: r.group, reload: r.reload, key: r.key })) }).toEqual({
        name: f.name,
        rules: [{ mode: f.mode, owner: f.owner, group: f.group, reload: f.reload, key: f.key }],
      });
    }
    // Every rule is used: no file the stack never delivers is allowed.
    expect(table.files.filter((r) => !full.files.some((f) => (r.pattern === undefined ? r.name === f.name : new RegExp(`^(?:${r.pattern})$`).test(f.name)))).map((r) => r.name)).toEqual([]);

    // The script, with the table as the bundle carries it, takes every file as the core renders it.
    publish(full);
    const h = host();
    writeFileSync(h.table, carried.content);
    const r = await h.sync();
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    expectInstalled(h, full);
    expect(readFileSync(join(h.dest, NFT_ADMIN), "utf8")).toContain("admin_v6 { 2001:db8::/48 }");
    expect(readFileSync(join(h.dest, "aliases"), "utf8")).toContain("\n@example.com bob@example.com\n@example.org info@example.com\n");
    expect(readFileSync(join(h.dest, "recipient-access"), "utf8")).toContain("carol@example.org 550 5.2.1 Carol has left; write to info@example.com (or call)\n");
  });

  test.each(["object", "parameter"] as const)("a manifest naming a file outside the runtime directory (in the %s) installs nothing", async (source) => {
    const h = host();
    const published = copy(base);
    const manifest = JSON.parse(published.parameters.get(`${PREFIX}/manifest`)!) as Manifest;
    const evil = "../../escaped";
    const content = "owned\n";
    manifest.files.push({ ...manifest.files[0], name: evil, source, sha256: sha256(content) });
    published.parameters.set(`${PREFIX}/manifest`, JSON.stringify(manifest));
    if (source === "parameter") published.parameters.set(`${PREFIX}/${keyParameterName(evil)}`, content);
    else published.object = JSON.stringify({ files: { ...(JSON.parse(base.object).files as Record<string, string>), [evil]: content } });
    publish(published);
    const r = await h.sync();
    expect({ status: r.status, stderr: r.stderr }).toEqual({
      status: 1,
      stderr: `mailstack-sync: not installing the runtime files: refusing unsafe file name '${evil}'\n`,
    });
    expect(snapshot(h)).toEqual(UNTOUCHED);
    expect(h.reloads()).toEqual([]);
  });
});
