/**
 * The real mailstack-sync.py (Debian's python3 and boto3) against a fake SSM endpoint and a
 * fake S3 endpoint served by this test on 127.0.0.1, fed with the key parameters, manifest and
 * runtime object the core renders for the stack.
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import { chmodSync, existsSync, lstatSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  hashPassword,
  HOST_OBJECTS,
  hostObjectsPrefix,
  keyFileNames,
  keyParameterName,
  type Manifest,
  type MailConfig,
  type MailConfigInput,
  PARAMETER_LIMIT,
  parseConfig,
  runtimeDelivery,
  runtimeFiles,
  type RuntimeFile,
  type RuntimeObjectLocation,
} from "@mailstack/core";
import { type FakeS3, FakeSsm, fakeAws, fakeAwsEnv, SSM_PAGE } from "../support/fake-aws";
import { SAMPLE_HASH } from "../support/fixtures";
import { requireTools, runAsync, type RunResult, tempRoot } from "../support/tools";

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

function stack(options: { selector?: string; hashes?: Record<string, string>; key?: number; mailboxes?: number; location?: RuntimeObjectLocation } = {}): Stack {
  const config = parseConfig(manyMailboxes(options.selector, options.mailboxes));
  const passwordHashes = new Map(config.mailboxes.map((m) => [m.address, options.hashes?.[m.address] ?? SAMPLE_HASH]));
  const files = runtimeFiles(config, { passwordHashes, dkimPrivateKeyPem: KEYS[options.key ?? 0], tlsPrivateKeyPem: TLS_KEY, resticPassword: "restic sync test passphrase" });
  const delivery = runtimeDelivery(files, options.location ?? LOCATION);
  const parameters = new Map(delivery.parameters.map((p) => [`${PREFIX}/${p.name}`, p.value]));
  parameters.set(`${PREFIX}/manifest`, delivery.manifest);
  return { config, files, manifest: JSON.parse(delivery.manifest) as Manifest, parameters, object: delivery.object };
}

/** A copy to break. */
const copy = (p: Published): Published => ({ parameters: new Map(p.parameters), object: p.object });

// --- one host ------------------------------------------------------------------------------
interface Host {
  root: string;
  dest: string;
  state: string;
  reloadLog: string;
  /** s3: the --s3-endpoint-url (null: none, the manifest's endpoint); env: added to the script's. */
  sync(options?: { s3?: string | null; env?: Record<string, string> }): Promise<RunResult>;
  reloads(): string[];
}

function newHost(ssm: FakeSsm, s3: FakeS3): Host {
  const root = tempRoot("ms-sync");
  const dest = join(root, "etc", "mailstack");
  const state = join(root, "var", "lib", "mailstack", "sync-state.json");
  const reloadLog = join(root, "reloads.log");
  const reload = join(root, "reload.sh");
  writeFileSync(reload, `#!/bin/sh\nprintf '%s\\n' "$1" >> ${reloadLog}\n`, { mode: 0o755 });
  return {
    root,
    dest,
    state,
    reloadLog,
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
          "--no-chown",
          "--reload-command", reload,
        ],
        {
          env: fakeAwsEnv(root, options.env),
        },
      );
    },
    reloads: () => (existsSync(reloadLog) ? readFileSync(reloadLog, "utf8").split("\n").filter(Boolean) : []),
  };
}

/** Everything under the host's root except the reload log: content, mode, and (runtime files) inode and mtime. */
function snapshot(host: Host): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir).sort()) {
      const path = join(dir, entry);
      const st = lstatSync(path);
      if (st.isDirectory()) walk(path);
      else if (path !== host.reloadLog) {
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
const UNTOUCHED = { "/reload.sh": expect.any(String) };
const DKIM = `${PREFIX}/${keyParameterName("dkim/mail.key")}`;

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
    expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: "mailstack-sync: updated users\nmailstack-sync: reloading dovecot.service\n", stderr: "" });
    expectInstalled(h, base);
    expect(h.reloads().slice(marker)).toEqual(["dovecot.service"]);
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
    expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: "mailstack-sync: updated users\nmailstack-sync: reloading dovecot.service\n", stderr: "" });
    expectInstalled(h, changed);
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
      stdout: "mailstack-sync: updated dkim/mail.key, users\nmailstack-sync: reloading dovecot.service\nmailstack-sync: reloading rspamd.service\n",
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
      stderr: `mailstack-sync: not installing the runtime files: the manifest or the object is malformed: ValueError("refusing unsafe file name '${evil}'")\n`,
    });
    expect(snapshot(h)).toEqual(UNTOUCHED);
    expect(h.reloads()).toEqual([]);
  });
});
