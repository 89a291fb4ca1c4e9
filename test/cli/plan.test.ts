import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { load } from "js-yaml";

// These run the built CLI as a newcomer would (`npm test` builds first), against the repo's
// own Pulumi.yaml and program.
const root = join(__dirname, "..", "..");
const cli = join(root, "packages", "cli", "dist", "main.js");
const work = mkdtempSync(join(tmpdir(), "mailstack-cli-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function mailstack(args: string[], cwd = root) {
  const result = spawnSync(process.execPath, [cli, ...args], { cwd, encoding: "utf8", timeout: 120_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

function stackFile(name: string, config: Record<string, unknown>): string {
  const file = join(work, `Pulumi.${name}.yaml`);
  writeFileSync(file, JSON.stringify({ config }));
  return file;
}

describe("mailstack plan of the default stack", () => {
  const out = join(work, "default");
  let run: ReturnType<typeof mailstack>;
  beforeAll(() => {
    run = mailstack(["plan", "--out", out]);
  });

  test("succeeds and lists every part of the deployment", () => {
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    const rows = run.stdout.split("\n");
    const row = (type: string, name: string) => rows.find((r) => r.startsWith(type) && r.includes(` ${name} `));
    expect(row("aws.ec2.Instance", "mail-host-instance")).toMatch(/t4g\.small .*IMDS tokens=required hops=1; root 16 GiB gp3 encrypted/);
    expect(row("aws.ebs.Volume", "mail-host-data")).toMatch(/20 GiB gp3 encrypted .*\[protected\]/);
    expect(row("aws.ec2.VolumeAttachment", "mail-host-data-attachment")).toMatch(/as \/dev\/sdf/);
    expect(row("aws.ec2.Eip", "mail-host-eip")).toMatch(/\[protected\]/);
    expect(row("aws.ec2.EipDomainName", "mail-ptr")).toMatch(/PTR -> mail\.example\.com/);
    expect(row("aws.ec2.SecurityGroup", "mail-firewall-sg")).toBeDefined();
    for (const port of [25, 465, 587, 993, 80, 443]) {
      expect(row("aws.vpc.SecurityGroupIngressRule", `mail-firewall-in-${port}`)).toMatch(new RegExp(`allow in tcp/${port} from 0\\.0\\.0\\.0/0`));
    }
    expect(rows.filter((r) => /allow in tcp\/22\b/.test(r))).toEqual([]);
    expect(row("aws.iam.Role", "mail-host-role")).toMatch(/assumed by ec2\.amazonaws\.com/);
    expect(row("aws.iam.InstanceProfile", "mail-host-profile")).toBeDefined();
    expect(row("aws.iam.RolePolicy", "mail-host-parameters")).toMatch(/parameter\/mailstack\/example\/mail/);
    expect(row("cloudflare.DnsRecord", "mail-dns-host-a")).toMatch(/A +mail\.example\.com 198\.51\.100\.\d+/);
    expect(row("cloudflare.DnsRecord", "mail-dns-mx-example.com")).toMatch(/MX +example\.com 10 mail\.example\.com/);
    expect(row("cloudflare.DnsRecord", "mail-dns-spf-example.com")).toMatch(/v=spf1 mx -all/);
    expect(row("cloudflare.DnsRecord", "mail-dns-dmarc-example.com")).toMatch(/v=DMARC1; p=quarantine/);
    expect(row("cloudflare.DnsRecord", "mail-dns-dkim-mail-example.com")).toMatch(/v=DKIM1; k=rsa; p=MII/);
    expect(row("aws.s3.Bucket", "mail-backup-bucket")).toMatch(/\[protected\]/);
    expect(row("aws.s3.BucketPublicAccessBlock", "mail-backup-public-access")).toMatch(/all public access blocked/);
    expect(row("aws.s3.BucketVersioning", "mail-backup-versioning")).toMatch(/versioning Enabled/);
    expect(row("aws.s3.BucketServerSideEncryptionConfiguration", "mail-backup-encryption")).toMatch(/aws:kms/);
    expect(row("aws.s3.BucketPolicy", "mail-backup-tls-only")).toMatch(/^.*deny/);
    expect(run.stdout).toContain("https://aws-portal.amazon.com/gp/aws/html-forms-controller/contactus/ec2-email-limit-rdns-request");
  });

  test("writes the user data, every host file and a zone per domain", () => {
    const userData = readFileSync(join(out, "user-data.yaml"), "utf8");
    expect(userData.startsWith("#cloud-config\n")).toBe(true);
    const doc = load(userData) as { write_files: { path: string; content: string }[] };
    expect(doc.write_files.length).toBeGreaterThan(20);
    for (const file of doc.write_files) {
      expect(readFileSync(join(out, "host", file.path), "utf8")).toBe(file.content);
    }
    expect(readFileSync(join(out, "host/etc/postfix/main.cf"), "utf8")).toMatch(/^myhostname = mail\.example\.com$/m);
    for (const zone of ["example.com", "example.org"]) {
      expect(readFileSync(join(out, "zones", `${zone}.zone`), "utf8")).toMatch(new RegExp(`^\\$ORIGIN ${zone.replace(".", "\\.")}\\.$`, "m"));
    }
  });

  test("masks secrets in the JSON output and writes none to disk", () => {
    const json = mailstack(["plan", "--json", "--out", join(work, "json")]);
    expect(json.status).toBe(0);
    const plan = JSON.parse(json.stdout) as { resources: { type: string; inputs: Record<string, unknown> }[] };
    const parameters = plan.resources.filter((r) => r.type === "aws:ssm/parameter:Parameter");
    expect(parameters.length).toBeGreaterThan(5);
    for (const p of parameters) expect(p.inputs.value).toBe("[secret]");
    // The plan stands a dummy password in for the secure placeholder; it must not leak.
    for (const text of [json.stdout, ...filesUnder(join(work, "json")).map((f) => readFileSync(f, "utf8"))]) {
      expect(text).not.toContain("(:) [;] <,>");
      expect(text).not.toContain("PRIVATE KEY");
      expect(text).not.toContain("{BLF-CRYPT}");
    }
  });
});

test("a plaintext password in a config file appears nowhere in the plan's output", () => {
  const password = "plaintext-canary-Password-42";
  const file = stackFile("canary", {
    "mailstack:domain": "example.net",
    "mailstack:mailboxes": [{ address: "carol@example.net", password }],
  });
  const out = join(work, "canary");
  const run = mailstack(["plan", "--config", file, "--out", out]);
  expect(run.status).toBe(0);
  expect(run.stdout).toContain("mail.example.net");
  for (const text of [run.stdout, run.stderr, ...filesUnder(out).map((f) => readFileSync(f, "utf8"))]) {
    expect(text).not.toContain(password);
  }
});

test("a bad configuration exits 2 naming each field and its fix, without a stack trace", () => {
  const file = stackFile("bad", {
    "mailstack:domain": "example.com",
    "mailstack:mailboxes": [{ address: "bob@", password: "short" }],
    "mailstack:adminCidrs": ["0.0.0.0/0"],
    "mailstack:mailbox": [],
  });
  const run = mailstack(["plan", "--config", file, "--out", join(work, "bad")]);
  expect(run.status).toBe(2);
  expect(run.stdout).toBe("");
  expect(run.stderr).toContain('mailbox: is not a known field. Did you mean "mailboxes"?');
  expect(existsSync(join(work, "bad"))).toBe(false);
  const second = mailstack([
    "plan",
    "--config",
    stackFile("bad2", {
      "mailstack:domain": "example.com",
      "mailstack:mailboxes": [{ address: "bob@", password: "short" }],
      "mailstack:adminCidrs": ["0.0.0.0/0"],
    }),
    "--out",
    join(work, "bad2"),
  ]);
  expect(second.status).toBe(2);
  expect(second.stderr).toContain('mailboxes[0].address: "bob@" is not an e-mail address');
  expect(second.stderr).toContain('adminCidrs[0]: "0.0.0.0/0" opens SSH to the whole internet');
  expect(second.stderr).not.toMatch(/^\s+at /m);
});

test("usage errors exit 2", () => {
  expect(mailstack([]).status).toBe(2);
  expect(mailstack(["deploy"]).status).toBe(2);
  const missing = mailstack(["plan", "--config", join(work, "Pulumi.nope.yaml")]);
  expect(missing.status).toBe(2);
  expect(missing.stderr).toContain("does not exist");
  const help = mailstack(["--help"]);
  expect(help.status).toBe(0);
  expect(help.stdout).toContain("usage: mailstack plan");
});

describe("a failing program fails the plan loudly instead of hanging", () => {
  const fixture = (name: string) => join(__dirname, "fixtures", name);
  test.each([
    ["throws-in-apply", "boom inside apply"],
    ["unmocked-invoke", "no answer for the data source aws:ec2/getKeyPair:getKeyPair"],
    ["never-finishes", "did not finish within 3 s"],
  ])("%s", (name, message) => {
    const run = mailstack(["plan", "--program", fixture(name), "--out", join(work, name), "--timeout", "3"]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(message);
  });
});

test("the CLI's bin entry is executable after the build", () => {
  expect(statSync(cli).mode & 0o111).not.toBe(0);
  expect(execFileSync(process.execPath, [cli, "--help"], { encoding: "utf8" })).toContain("mailstack plan");
});
