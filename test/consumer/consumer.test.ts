// The library as its consumers get it: every package packed with `npm pack`, installed from
// the tarballs into a scratch project outside the workspace, and planned from there, once
// from TypeScript compiled with `strict` against the published declarations and once from
// plain JavaScript. Nothing here reads the workspace's sources or its node_modules.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { join, relative } from "node:path";
import { load } from "js-yaml";

const ROOT = join(__dirname, "..", "..");
const PACKAGES = ["core", "pulumi", "cli"] as const;
const work = mkdtempSync(join(tmpdir(), "mailstack-consumer-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Packed {
  filename: string;
  files: { path: string }[];
}

const packed: Record<string, Packed> = {};

function npm(args: string[], cwd: string): string {
  // npm itself runs on whatever node is on PATH; the consumer's programs run on this one.
  const result = spawnSync("npm", args, { cwd, encoding: "utf8", timeout: 300_000, env: { ...process.env, npm_config_update_notifier: "false" } });
  if (result.status !== 0) throw new Error(`npm ${args.join(" ")} failed in ${cwd} (status ${result.status}):\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** The scratch project: the three tarballs, and what a TypeScript consumer has besides. */
function installConsumer(): string {
  const dir = join(work, "project");
  mkdirSync(dir);
  const rootManifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  writeFileSync(
    join(dir, "package.json"),
    JSON.stringify(
      {
        name: "mailstack-consumer",
        version: "1.0.0",
        private: true,
        dependencies: Object.fromEntries(PACKAGES.map((p) => [`@mailstack/${p}`, `file:${join(work, "packs", packed[p].filename)}`])),
        devDependencies: { "@types/node": rootManifest.devDependencies["@types/node"] },
      },
      null,
      2,
    ),
  );
  npm(["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], dir);
  return dir;
}

function program(dir: string, name: string, main: string, files: Record<string, string>): string {
  const programDir = join(dir, name);
  mkdirSync(programDir);
  writeFileSync(join(programDir, "Pulumi.yaml"), `name: ${name}\nruntime: nodejs\nmain: ${main}\n`);
  for (const [file, content] of Object.entries(files)) writeFileSync(join(programDir, file), content);
  return programDir;
}

// A password hash, so the plan needs no secret: the stack file is what a user would commit.
const HASH = "{BLF-CRYPT}$2b$10$ZUDnZFLyWULpJV/qWU2rc.XEThdZxhIbbWJepiA4ZKNDAB1Lb56sW";
const STACK = `config:\n  aws:region: eu-west-1\n`;

const JS_PROGRAM = `const { MailStack } = require("@mailstack/pulumi");
const mail = new MailStack("mail", {
  domain: "example.com",
  mailboxes: [
    { address: "alice@example.com", passwordHash: ${JSON.stringify(HASH)} },
    { address: "bob@example.com", password: "a plain passphrase, hashed by a resource" },
  ],
});
exports.publicIp = mail.publicIp;
exports.resticRepository = mail.resticRepository;
`;

const TS_PROGRAM = `import * as pulumi from "@pulumi/pulumi";
import { MailStack, type MailStackArgs } from "@mailstack/pulumi";
import { parseConfig, type MailConfig } from "@mailstack/core";

const args: MailStackArgs = {
  domain: "example.com",
  mailboxes: [{ address: "alice@example.com", passwordHash: pulumi.secret(${JSON.stringify(HASH)}) }],
};
// The core is usable on its own, e.g. to check a configuration in a test of the consumer's.
const checked: MailConfig = parseConfig({ ...args, mailboxes: [{ address: "alice@example.com", passwordHash: ${JSON.stringify(HASH)} }] });
const mail = new MailStack("mail", args);
export const publicIp: pulumi.Output<string> = mail.publicIp;
export const resticRepository: pulumi.Output<string> = mail.resticRepository;
export const hostname: string = checked.hostname;
`;

const TSCONFIG = {
  compilerOptions: {
    target: "es2022",
    module: "commonjs",
    strict: true,
    esModuleInterop: true,
    // The consumer's own declarations are checked; so are the packages', unlike skipLibCheck.
    skipLibCheck: false,
    types: ["node"],
    outDir: "dist",
  },
  files: ["index.ts"],
};

interface Plan {
  status: number | null;
  stdout: string;
  stderr: string;
  out: string;
  /** The user-data.yaml the plan wrote, if any. */
  userData?: string;
  /** The host-bundle.json the plan wrote, if any. */
  bundle?: string;
  json?: { resources: { type: string; name: string; parent: string }[]; outputs: Record<string, unknown> };
}

function plan(cli: string, programDir: string): Plan {
  const out = join(programDir, "plan-out");
  const result = spawnSync(process.execPath, [cli, "plan", "--json", "--config", "Pulumi.dev.yaml", "--out", out], { cwd: programDir, encoding: "utf8", timeout: 120_000 });
  return {
    status: result.status,
    stdout: result.stdout,
    stderr: result.stderr,
    out,
    userData: existsSync(join(out, "user-data.yaml")) ? readFileSync(join(out, "user-data.yaml"), "utf8") : undefined,
    bundle: existsSync(join(out, "host-bundle.json")) ? readFileSync(join(out, "host-bundle.json"), "utf8") : undefined,
    json: result.status === 0 ? JSON.parse(result.stdout) : undefined,
  };
}

/** What every deployment must hold: without any of these there is no working mail host. */
const REQUIRED: [type: string, name: string][] = [
  ["mailstack:index:MailStack", "mail"],
  ["aws:ec2/instance:Instance", "mail-host-instance"],
  ["aws:ebs/volume:Volume", "mail-host-data"],
  ["aws:ec2/volumeAttachment:VolumeAttachment", "mail-host-data-attachment"],
  ["aws:ec2/eip:Eip", "mail-host-eip"],
  ["aws:ec2/eipAssociation:EipAssociation", "mail-host-eip-association"],
  ["aws:ec2/eipDomainName:EipDomainName", "mail-ptr"],
  ["aws:ec2/securityGroup:SecurityGroup", "mail-firewall-sg"],
  ["aws:iam/role:Role", "mail-host-role"],
  ["cloudflare:index/dnsRecord:DnsRecord", "mail-dns-host-a"],
  ["cloudflare:index/dnsRecord:DnsRecord", "mail-dns-mx-example.com"],
  ["aws:s3/bucket:Bucket", "mail-backup-bucket"],
  ["aws:ssm/parameter:Parameter", "mail-parameters-manifest"],
  ["aws:s3/bucketObjectv2:BucketObjectv2", "mail-parameters-runtime"],
  ["aws:s3/bucketObjectv2:BucketObjectv2", "mail-host-bundle"],
  ["aws:ssm/parameter:Parameter", "mail-host-bundle-pointer"],
  ["aws:dlm/lifecyclePolicy:LifecyclePolicy", "mail-snapshots-policy"],
];

describe("the packed packages, installed outside the workspace", () => {
  let project: string;
  let cli: string;
  let js: Plan;
  let ts: Plan;
  let workspace: Plan;

  beforeAll(() => {
    const packs = join(work, "packs");
    mkdirSync(packs);
    for (const p of PACKAGES) {
      const [result] = JSON.parse(npm(["pack", "--json", "--pack-destination", packs, "--loglevel=error"], join(ROOT, "packages", p))) as Packed[];
      packed[p] = result;
    }
    project = installConsumer();
    cli = join(project, "node_modules", "@mailstack", "cli", "dist", "main.js");

    js = plan(cli, program(project, "js-consumer", "index.js", { "index.js": JS_PROGRAM, "Pulumi.dev.yaml": STACK }));
    const tsDir = program(project, "ts-consumer", "dist/index.js", { "index.ts": TS_PROGRAM, "tsconfig.json": JSON.stringify(TSCONFIG, null, 2), "Pulumi.dev.yaml": STACK });
    // The workspace's compiler, but every type it sees comes from the consumer's node_modules.
    execFileSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", tsDir], { cwd: tsDir, encoding: "utf8" });
    ts = plan(cli, tsDir);

    // The same JavaScript program planned with the workspace's own build, for comparison.
    const inWorkspace = mkdtempSync(join(ROOT, ".consumer-"));
    try {
      writeFileSync(join(inWorkspace, "Pulumi.yaml"), "name: js-consumer\nruntime: nodejs\nmain: index.js\n");
      writeFileSync(join(inWorkspace, "index.js"), JS_PROGRAM);
      writeFileSync(join(inWorkspace, "Pulumi.dev.yaml"), STACK);
      workspace = plan(join(ROOT, "packages", "cli", "dist", "main.js"), inWorkspace);
    } finally {
      rmSync(inWorkspace, { recursive: true, force: true });
    }
  }, 600_000);

  test("the project resolves every package from its own node_modules, not from the workspace", () => {
    for (const p of PACKAGES) {
      const resolved = createRequire(join(project, "package.json")).resolve(`@mailstack/${p}/package.json`);
      expect(relative(project, resolved).startsWith("node_modules")).toBe(true);
    }
    expect(existsSync(join(project, "node_modules", "@mailstack", "core", "src"))).toBe(false);
  });

  test.each([
    ["JavaScript", () => js],
    ["TypeScript (strict)", () => ts],
  ])("a %s consumer plans the whole deployment and writes the user data and the host bundle", (_kind, get) => {
    const run = get();
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: "" });
    const resources = run.json!.resources;
    for (const [type, name] of REQUIRED) {
      expect({ type, name, found: resources.some((r) => r.type === type && r.name === name) }).toEqual({ type, name, found: true });
    }
    const userData = run.userData ?? "";
    if (run === js) expect(resources.some((r) => r.name === "mail-parameters-password-hashes")).toBe(true);
    expect(userData.startsWith("#cloud-config\n")).toBe(true);
    const files = [
      ...(load(userData) as { write_files: { path: string; content: string }[] }).write_files,
      ...(JSON.parse(run.bundle ?? '{"files":[]}') as { files: { path: string; content: string }[] }).files,
    ];
    // The host scripts come from the core package's scripts/ directory at render time.
    for (const script of ["mailstack-first-boot", "mailstack-bootstrap", "mailstack-sync", "mailstack-backup", "mailstack-certificate", "mailstack-data-volume"]) {
      expect(files.find((f) => f.path === `/usr/local/sbin/${script}`)?.content).toMatch(/^#!/);
    }
  });

  test("the packed packages plan exactly what the workspace plans", () => {
    expect(workspace.status).toBe(0);
    const names = (p: Plan) => p.json!.resources.map((r) => `${r.type} ${r.name} <- ${r.parent.split("::").pop()}`).sort();
    expect(names(js)).toEqual(names(workspace));
    expect(js.userData).toBeDefined();
    expect(js.userData).toBe(workspace.userData);
    expect(js.bundle).toBeDefined();
    expect(js.bundle).toBe(workspace.bundle);
  });

  test("each tarball holds the compiled modules, their declarations and what they read at run time, and nothing else", () => {
    for (const p of PACKAGES) {
      const files = packed[p].files.map((f) => f.path).sort();
      const allowed = (path: string) =>
        path === "package.json" || /^dist\/[\w/-]+\.(js|d\.ts)$/.test(path) || (p === "core" && /^scripts\/mailstack-[a-z-]+\.(sh|py)$/.test(path));
      expect({ p, stray: files.filter((f) => !allowed(f)) }).toEqual({ p, stray: [] });
      // Every compiled module ships with its declaration, and every declaration with its module.
      const js = files.filter((f) => f.endsWith(".js")).map((f) => f.slice(0, -3));
      const dts = files.filter((f) => f.endsWith(".d.ts")).map((f) => f.slice(0, -5));
      expect(js).toEqual(dts);
      const manifest = JSON.parse(readFileSync(join(ROOT, "packages", p, "package.json"), "utf8"));
      for (const entry of [manifest.main, manifest.types, ...Object.values(manifest.bin ?? {})].filter(Boolean)) {
        expect({ p, entry, packed: files.includes(String(entry)) }).toEqual({ p, entry, packed: true });
      }
    }
    // Every host script the core reads at render time ships, whatever their number.
    const scripts = readdirSync(join(ROOT, "packages/core/scripts"), { withFileTypes: true }).filter((e) => e.isFile());
    expect(scripts.length).toBeGreaterThanOrEqual(7);
    expect(packed.core.files.map((f) => f.path).filter((f) => f.startsWith("scripts/")).sort()).toEqual(scripts.map((e) => `scripts/${e.name}`).sort());
  });
});
