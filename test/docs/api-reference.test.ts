// The API reference (`npm run docs:api`) builds from the TSDoc with the repository's TypeDoc
// options, which fail on an undocumented export and on a {@link} that resolves to nothing.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as pulumiPackage from "@mailstack/pulumi";
import * as pulumi from "@pulumi/pulumi";
import * as ts from "typescript";

const ROOT = join(__dirname, "..", "..");
const TYPEDOC = join(ROOT, "node_modules", "typedoc", "bin", "typedoc");
let scratch: string;
let options: string;

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "ms-api-"));
  // The repository's options without source links: those come from the checkout's git remote,
  // which a copy without `origin` lacks, and TypeDoc's warning about that would stop it before
  // the checks these tests are about. Packages take only packageOptions, not the root's options.
  const root = join(ROOT, "typedoc.json");
  const { packageOptions } = ts.readConfigFile(root, ts.sys.readFile).config as { packageOptions: object };
  options = join(scratch, "typedoc.json");
  writeFileSync(options, JSON.stringify({ extends: [root], disableSources: true, packageOptions: { ...packageOptions, disableSources: true } }));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** TypeDoc with the repository's options (less source links), writing into the scratch directory. */
function typedoc(out: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [TYPEDOC, "--options", options, "--out", join(scratch, out), ...args], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** A package of one source file, as TypeDoc's packages mode takes it. */
function fixture(name: string, source: string): string {
  const dir = join(scratch, name);
  mkdirSync(join(dir, "src"), { recursive: true });
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name, version: "0.0.0", main: "src/index.ts" }));
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: { strict: true, module: "commonjs", target: "es2022", skipLibCheck: true }, include: ["src"] }));
  writeFileSync(join(dir, "src", "index.ts"), source);
  return dir;
}

test("builds for both packages without a warning, with a page for every component and its args", () => {
  const r = typedoc("api");
  expect({ status: r.status, warnings: r.output.split("\n").filter((l) => l.startsWith("[warning]") || l.startsWith("[error]")) }).toEqual({ status: 0, warnings: [] });
  const components = Object.entries(pulumiPackage)
    .filter(([name, value]) => typeof value === "function" && value.prototype instanceof pulumi.ComponentResource && name !== "MailDns")
    .map(([name]) => name)
    .sort();
  expect(components).toEqual(["DkimKey", "MailAlerts", "MailBackup", "MailDnsCloudflare", "MailDnsRoute53", "MailFirewall", "MailHost", "MailMonitoring", "MailParameters", "MailReadiness", "MailSes", "MailSnapshots", "MailStack", "TlsKey"]);
  for (const name of components) {
    expect({ name, page: existsSync(join(scratch, "api", "classes", `_mailstack_pulumi.${name}.html`)) }).toEqual({ name, page: true });
    if (name !== "TlsKey") expect({ name, args: existsSync(join(scratch, "api", "interfaces", `_mailstack_pulumi.${name}Args.html`)) }).toEqual({ name, args: true });
  }
  expect(existsSync(join(scratch, "api", "modules", "_mailstack_core.html"))).toBe(true);
}, 180000);

test("an undocumented export fails it", () => {
  const dir = fixture("undocumented", "/** Documented. */\nexport const documented = 1;\nexport function undocumented(): number {\n  return 2;\n}\n");
  const r = typedoc("undocumented-out", "--entryPoints", dir);
  expect(r.status).not.toBe(0);
  expect(r.output).toContain("undocumented (CallSignature), defined in undocumented/src/index.ts, does not have any documentation");
}, 60000);

test("a link that resolves to nothing fails it", () => {
  const dir = fixture("broken-link", "/** Documented, but see {@link Nowhere}. */\nexport const linked = 1;\n");
  const r = typedoc("broken-link-out", "--entryPoints", dir);
  expect(r.status).not.toBe(0);
  expect(r.output).toContain('Failed to resolve link to "Nowhere"');
}, 60000);
