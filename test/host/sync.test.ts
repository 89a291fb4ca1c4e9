/**
 * The real mailstack-sync.py (Debian's python3 and boto3) against a fake SSM endpoint served
 * by this test on 127.0.0.1, fed with the parameters the core renders for the stack.
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { chmodSync, existsSync, lstatSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  hashPassword,
  type Manifest,
  type MailConfig,
  type MailConfigInput,
  parameterLayout,
  parameterValues,
  parseConfig,
  runtimeFiles,
  type RuntimeFile,
} from "@mailstack/core";
import { SAMPLE_HASH } from "../support/fixtures";
import { requireTools, runAsync, type RunResult, tempRoot } from "../support/tools";

requireTools("python3", "boto3");

const SCRIPT = join(__dirname, "..", "..", "packages", "core", "scripts", "mailstack-sync.py");
const PREFIX = "/mailstack/test/mail";
const PAGE = 10; // GetParametersByPath returns at most 10 parameters per call.

interface SsmRequest {
  target: string;
  body: { Path?: string; Recursive?: boolean; WithDecryption?: boolean; NextToken?: string; MaxResults?: number };
}

/** The slice of the SSM JSON protocol the sync uses: GetParametersByPath with pagination. */
class FakeSsm {
  readonly parameters = new Map<string, string>();
  readonly requests: SsmRequest[] = [];
  /** Answers every request with AccessDeniedException, as SSM does for a role without the permission. */
  refuse = false;
  private server!: Server;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Replaces every parameter, as a `pulumi up` that declares exactly these would. */
  publish(values: Map<string, string>): void {
    this.parameters.clear();
    for (const [k, v] of values) this.parameters.set(k, v);
  }

  private handle(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const reply = (status: number, body: unknown) => {
        const text = JSON.stringify(body);
        res.writeHead(status, { "Content-Type": "application/x-amz-json-1.1", "Content-Length": Buffer.byteLength(text), "x-amzn-RequestId": "00000000-0000-0000-0000-000000000000" });
        res.end(text);
      };
      const target = String(req.headers["x-amz-target"] ?? "");
      let body: SsmRequest["body"];
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
      } catch {
        return reply(400, { __type: "SerializationException", message: "body is not JSON" });
      }
      this.requests.push({ target, body });
      if (req.method !== "POST") return reply(400, { __type: "InvalidAction", message: "POST only" });
      if (target !== "AmazonSSM.GetParametersByPath") return reply(400, { __type: "UnknownOperationException", message: target });
      if (this.refuse) return reply(400, { __type: "AccessDeniedException", message: "not authorized to perform ssm:GetParametersByPath" });
      if (!body.Path || !body.Path.startsWith("/")) return reply(400, { __type: "ValidationException", message: "Path must start with /" });
      const base = body.Path.replace(/\/$/, "") + "/";
      const names = [...this.parameters.keys()]
        .filter((n) => n.startsWith(base) && (body.Recursive || !n.slice(base.length).includes("/")))
        .sort();
      const start = body.NextToken ? Number(Buffer.from(body.NextToken, "base64").toString("utf8").replace(/^offset:/, "")) : 0;
      if (!Number.isInteger(start)) return reply(400, { __type: "InvalidNextToken", message: "bad token" });
      const size = Math.min(body.MaxResults ?? PAGE, PAGE);
      const page = names.slice(start, start + size);
      const out: Record<string, unknown> = {
        Parameters: page.map((Name) => ({
          Name,
          Type: "SecureString",
          // Without WithDecryption, SSM returns the KMS ciphertext of a SecureString.
          Value: body.WithDecryption ? this.parameters.get(Name) : Buffer.from(`ciphertext:${Name}`).toString("base64"),
          Version: 1,
          DataType: "text",
          ARN: `arn:aws:ssm:us-east-1:123456789012:parameter${Name}`,
        })),
      };
      if (start + size < names.length) out.NextToken = Buffer.from(`offset:${start + size}`).toString("base64");
      reply(200, out);
    });
  }
}

// --- the stack's data ---------------------------------------------------------------------
const MANY = 500;
const pad = (i: number) => String(i).padStart(4, "0");

function manyMailboxes(selector = "mail"): MailConfigInput {
  return {
    domain: "example.com",
    extraDomains: ["example.org"],
    mailboxes: Array.from({ length: MANY }, (_, i) => ({
      address: `user${pad(i)}@example.com`,
      passwordHash: SAMPLE_HASH,
      quota: i % 3 === 0 ? "unlimited" : "2G",
      ...(i % 10 === 0 ? { aliases: [`user${pad(i)}@example.org`] } : {}),
    })),
    aliases: [{ address: "team@example.com", to: Array.from({ length: 20 }, (_, i) => `user${pad(i)}@example.com`) }],
    dkimSelector: selector,
  };
}

const TLS_KEY = generateKeyPairSync("ec", { namedCurve: "P-256", publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "sec1", format: "pem" } }).privateKey;
const KEYS = [0, 1].map(() => generateKeyPairSync("rsa", { modulusLength: 2048, publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } }).privateKey);

interface Stack {
  config: MailConfig;
  files: RuntimeFile[];
  manifest: Manifest;
  /** Parameter name (full path) to value. */
  values: Map<string, string>;
}

function stack(options: { selector?: string; hashes?: Record<string, string>; key?: number } = {}): Stack {
  const config = parseConfig(manyMailboxes(options.selector));
  const passwordHashes = new Map(config.mailboxes.map((m) => [m.address, options.hashes?.[m.address] ?? SAMPLE_HASH]));
  const files = runtimeFiles(config, { passwordHashes, dkimPrivateKeyPem: KEYS[options.key ?? 0], tlsPrivateKeyPem: TLS_KEY, resticPassword: "restic sync test passphrase" });
  const rendered = parameterValues(files, parameterLayout(config));
  const values = new Map(rendered.parts.map((p) => [`${PREFIX}/${p.name}`, p.value]));
  values.set(`${PREFIX}/manifest`, rendered.manifest);
  return { config, files, manifest: JSON.parse(rendered.manifest) as Manifest, values };
}

// --- one host ------------------------------------------------------------------------------
interface Host {
  root: string;
  dest: string;
  state: string;
  reloadLog: string;
  sync(): Promise<RunResult>;
  reloads(): string[];
}

function newHost(fake: FakeSsm): Host {
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
    sync: () =>
      runAsync(
        "/usr/bin/python3",
        [SCRIPT, "--prefix", PREFIX, "--endpoint-url", fake.endpoint, "--region", "us-east-1", "--dest", dest, "--state", state, "--no-chown", "--reload-command", reload],
        {
          env: {
            HOME: root,
            LANG: "C.UTF-8",
            AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE",
            AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            AWS_CONFIG_FILE: join(root, "no-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE: join(root, "no-aws-credentials"),
            AWS_EC2_METADATA_DISABLED: "true",
          },
        },
      ),
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
        const sha = createHash("sha256").update(readFileSync(path)).digest("hex");
        // The script rewrites its own state file on every successful run; only its content counts.
        const identity = path === host.state ? "" : ` ${st.ino} ${st.mtimeMs}`;
        out[path.slice(host.root.length)] = `${sha} ${(st.mode & 0o7777).toString(8)}${identity}`;
      }
    }
  };
  walk(host.root);
  return out;
}

function expectInstalled(host: Host, s: Stack) {
  for (const f of s.files) {
    const path = join(host.dest, f.name);
    expect({ name: f.name, content: readFileSync(path, "utf8") }).toEqual({ name: f.name, content: f.content });
    expect({ name: f.name, mode: (lstatSync(path).mode & 0o7777).toString(8).padStart(4, "0") }).toEqual({ name: f.name, mode: f.mode });
  }
}

const unitsOf = (files: { reload: string[] }[]) => [...new Set(files.flatMap((f) => f.reload))].sort();

describe("mailstack-sync.py against a fake SSM endpoint", () => {
  const fake = new FakeSsm();
  const hosts: Host[] = [];
  const host = () => {
    const h = newHost(fake);
    hosts.push(h);
    return h;
  };
  const base = stack();

  beforeAll(() => fake.start());
  afterAll(async () => {
    await fake.stop();
    for (const h of hosts) await runAsync("rm", ["-rf", h.root]);
  });
  beforeEach(() => {
    fake.publish(base.values);
    fake.requests.length = 0;
  });

  test("the data set exercises splitting and pagination", () => {
    const layout = parameterLayout(base.config);
    expect(layout.parts.users).toBeGreaterThan(2);
    expect(base.values.size).toBeGreaterThan(2 * PAGE); // three pages or more
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
  });

  test("every page was fetched: recursive, decrypted, following NextToken to the end", async () => {
    const h = host();
    expect((await h.sync()).status).toBe(0);
    const pages = Math.ceil(base.values.size / PAGE);
    expect(fake.requests.length).toBe(pages);
    fake.requests.forEach((q, i) => {
      expect(q.target).toBe("AmazonSSM.GetParametersByPath");
      expect(q.body).toMatchObject({ Path: PREFIX, Recursive: true, WithDecryption: true });
      expect(q.body.NextToken === undefined).toBe(i === 0);
    });
    expectInstalled(h, base);
  });

  test("a second sync with nothing new changes nothing and reloads nothing", async () => {
    const h = host();
    expect((await h.sync()).status).toBe(0);
    const before = snapshot(h);
    const reloadsBefore = h.reloads();
    const r = await h.sync();
    expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: "", stderr: "" });
    expect(snapshot(h)).toEqual(before);
    expect(h.reloads()).toEqual(reloadsBefore);
  });

  test("a changed password hash rewrites only the users file and reloads only Dovecot", async () => {
    const h = host();
    expect((await h.sync()).status).toBe(0);
    const before = snapshot(h);
    const changed = stack({ hashes: { "user0007@example.com": hashPassword("a brand new passphrase", "user0007@example.com", PREFIX) } });
    fake.publish(changed.values);
    const marker = h.reloads().length;
    const r = await h.sync();
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("updated users");
    expectInstalled(h, changed);
    expect(h.reloads().slice(marker)).toEqual(["dovecot.service"]);
    const after = snapshot(h);
    const differing = Object.keys(after).filter((k) => after[k] !== before[k]).sort();
    expect(differing).toEqual(["/etc/mailstack/users"]);
  });

  test("a new DKIM key reloads only rspamd", async () => {
    const h = host();
    expect((await h.sync()).status).toBe(0);
    const changed = stack({ key: 1 });
    fake.publish(changed.values);
    const marker = h.reloads().length;
    expect((await h.sync()).status).toBe(0);
    expectInstalled(h, changed);
    expect(h.reloads().slice(marker)).toEqual(["rspamd.service"]);
  });

  test("a file dropped from the manifest is deleted and its readers reloaded", async () => {
    const h = host();
    expect((await h.sync()).status).toBe(0);
    expect(existsSync(join(h.dest, "dkim", "mail.key"))).toBe(true);
    const renamed = stack({ selector: "s2026" });
    expect(renamed.files.map((f) => f.name)).not.toContain("dkim/mail.key");
    fake.publish(renamed.values);
    const before = h.reloads().length;
    const r = await h.sync();
    expect(r.status).toBe(0);
    expect(existsSync(join(h.dest, "dkim", "mail.key"))).toBe(false);
    expectInstalled(h, renamed);
    expect(h.reloads().slice(before)).toEqual(["rspamd.service"]);
    const state = JSON.parse(readFileSync(h.state, "utf8")).files as Record<string, string[]>;
    expect(Object.keys(state).sort()).toEqual(renamed.files.map((f) => f.name).sort());
    expect(state["dkim/s2026.key"]).toEqual(["rspamd.service"]);
  });

  test("a file whose mode was changed on the host gets its mode back, content untouched", async () => {
    const h = host();
    expect((await h.sync()).status).toBe(0);
    const users = join(h.dest, "users");
    chmodSync(users, 0o644);
    const before = h.reloads().length;
    expect((await h.sync()).status).toBe(0);
    expect(statSync(users).mode & 0o7777).toBe(0o640);
    expect(h.reloads().slice(before)).toEqual(["dovecot.service"]);
  });

  describe("parameters that do not agree with the manifest: exit 75, nothing written", () => {
    // Each case starts from a host in sync with `base`, then publishes the next version
    // (a changed users file and DKIM key) broken in one way.
    const next = () => stack({ hashes: { "user0001@example.com": hashPassword("another good passphrase", "user0001@example.com", PREFIX) }, key: 1 });
    const usersPart = (index: number) => `${PREFIX}/files/users/${index}`;

    const cases: [string, (values: Map<string, string>) => void][] = [
      [
        "a tampered part (SHA-256 mismatch)",
        (v) => {
          const name = usersPart(1);
          const value = v.get(name)!;
          const at = value.indexOf("{BLF-CRYPT}");
          v.set(name, value.slice(0, at) + "{BLF-CRYPX}" + value.slice(at + 11));
        },
      ],
      ["a missing part", (v) => v.delete(usersPart(1))],
      ["a missing manifest", (v) => v.delete(`${PREFIX}/manifest`)],
      [
        "a part from another layout (header mismatch)",
        (v) => {
          const name = usersPart(0);
          v.set(name, v.get(name)!.replace(/^# mailstack users 1\/(\d+)\n/, (_m, n) => `# mailstack users 1/${Number(n) + 1}\n`));
        },
      ],
      [
        "a manifest whose digest is for other content",
        (v) => {
          const manifest = JSON.parse(v.get(`${PREFIX}/manifest`)!) as Manifest;
          manifest.files[0].sha256 = "0".repeat(64);
          v.set(`${PREFIX}/manifest`, JSON.stringify(manifest));
        },
      ],
    ];

    test.each(cases)("%s, on a host already in sync", async (_label, breakIt) => {
      const h = host();
      expect((await h.sync()).status).toBe(0);
      const before = snapshot(h);
      const reloadsBefore = h.reloads();
      const values = new Map(next().values);
      breakIt(values);
      fake.publish(values);
      const r = await h.sync();
      expect(r.status).toBe(75);
      expect(r.stderr).toContain("not installing");
      expect(snapshot(h)).toEqual(before);
      expect(h.reloads()).toEqual(reloadsBefore);
    });

    test.each(cases)("%s, on a fresh host", async (_label, breakIt) => {
      const h = host();
      const values = new Map(base.values);
      breakIt(values);
      fake.publish(values);
      const r = await h.sync();
      expect(r.status).toBe(75);
      expect(snapshot(h)).toEqual({ "/reload.sh": expect.any(String) });
      expect(h.reloads()).toEqual([]);
    });
  });

  test("SSM unreachable: exit 75 (retried) with one line that says so, nothing written", async () => {
    const h = newHost(Object.assign(new FakeSsm(), { port: 1 }));
    hosts.push(h);
    const r = await h.sync();
    expect({ status: r.status, stderr: r.stderr.trim().split("\n") }).toEqual({
      status: 75,
      stderr: [expect.stringMatching(/^mailstack-sync: cannot read \/.* from SSM: Could not connect to the endpoint URL: .*; will retry$/)],
    });
    expect(snapshot(h)).toEqual({ "/reload.sh": expect.any(String) });
  });

  test("SSM refusing access: exit 1 (a fault, not retried quietly) with one line that names the error", async () => {
    const h = host();
    fake.refuse = true;
    try {
      const r = await h.sync();
      expect({ status: r.status, stderr: r.stderr.trim().split("\n") }).toEqual({
        status: 1,
        stderr: [expect.stringMatching(/^mailstack-sync: SSM refused reading \/.*AccessDeniedException.*$/)],
      });
    } finally {
      fake.refuse = false;
    }
    expect(snapshot(h)).toEqual({ "/reload.sh": expect.any(String) });
  });

  test("a manifest naming a file outside the runtime directory installs nothing", async () => {
    const h = host();
    const values = new Map(base.values);
    const manifest = JSON.parse(values.get(`${PREFIX}/manifest`)!) as Manifest;
    const evil = "../../escaped";
    const content = "owned\n";
    manifest.files.push({ ...manifest.files[0], name: evil, parts: 1, sha256: createHash("sha256").update(content).digest("hex") });
    values.set(`${PREFIX}/manifest`, JSON.stringify(manifest));
    values.set(`${PREFIX}/files/${evil}/0`, `# mailstack ${evil} 1/1\n${content}`);
    fake.publish(values);
    const r = await h.sync();
    expect(r.status).not.toBe(0);
    expect(snapshot(h)).toEqual({ "/reload.sh": expect.any(String) });
    expect(h.reloads()).toEqual([]);
  });
});
