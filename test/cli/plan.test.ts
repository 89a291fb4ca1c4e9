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

const MINIMAL = {
  "mailstack:domain": "example.net",
  "mailstack:mailboxes": [{ address: "carol@example.net", passwordHash: "{BLF-CRYPT}$2b$10$ZUDnZFLyWULpJV/qWU2rc.XEThdZxhIbbWJepiA4ZKNDAB1Lb56sW" }],
};

function stackFile(name: string, config: Record<string, unknown>): string {
  const file = join(work, `Pulumi.${name}.yaml`);
  writeFileSync(file, JSON.stringify({ config: { "aws:region": "us-east-1", ...config } }));
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
    expect(row("aws.iam.RolePolicy", "mail-host-parameters")).toMatch(/parameter\/mailstack\/mailstack\/example\/mail/);
    expect(row("cloudflare.DnsRecord", "mail-dns-host-a")).toMatch(/A +mail\.example\.com 198\.51\.100\.\d+/);
    expect(row("cloudflare.DnsRecord", "mail-dns-mx-example.com")).toMatch(/MX +example\.com 10 mail\.example\.com/);
    expect(row("cloudflare.DnsRecord", "mail-dns-spf-example.com")).toMatch(/v=spf1 mx -all/);
    expect(row("cloudflare.DnsRecord", "mail-dns-dmarc-example.com")).toMatch(/v=DMARC1; p=quarantine/);
    expect(row("cloudflare.DnsRecord", "mail-dns-dkim-mail-example.com")).toMatch(/v=DKIM1; k=rsa; p=MII/);
    expect(row("cloudflare.DnsRecord", "mail-dns-mta-sts-host-example.org")).toMatch(/CNAME mta-sts\.example\.org mail\.example\.com/);
    expect(row("cloudflare.DnsRecord", "mail-dns-srv-submissions-example.com")).toMatch(/SRV +_submissions\._tcp\.example\.com 0 1 465 mail\.example\.com/);
    expect(row("cloudflare.DnsRecord", "mail-dns-srv-imap-example.com")).toMatch(/SRV +_imap\._tcp\.example\.com 0 0 0 \./);
    expect(row("cloudflare.DnsRecord", "mail-dns-host-caa-issue-letsencrypt.org")).toMatch(/CAA +mail\.example\.com 0 issue "letsencrypt\.org"/);
    // DNSSEC is off in the example stack, and with it the TLSA record.
    expect(rows.filter((r) => /ZoneDnssec|TLSA/.test(r))).toEqual([]);
    expect(row("aws.s3.Bucket", "mail-backup-bucket")).toMatch(/\[protected\]/);
    expect(row("aws.s3.BucketPublicAccessBlock", "mail-backup-public-access")).toMatch(/all public access blocked/);
    expect(row("aws.s3.BucketVersioning", "mail-backup-versioning")).toMatch(/versioning Enabled/);
    expect(row("aws.s3.BucketServerSideEncryptionConfiguration", "mail-backup-encryption")).toMatch(/aws:kms/);
    expect(row("aws.s3.BucketPolicy", "mail-backup-tls-only")).toMatch(/^.*deny/);
    expect(row("random.RandomPassword", "mail-backup-restic-password")).toMatch(/48 characters \[protected\]/);
    expect(row("aws.iam.RolePolicy", "mail-host-backup")).toMatch(/3 actions on s3:mail-backup-bucket-\w+\/restic\/\*; 1 actions on s3:mail-backup-bucket-\w+\/host\/mailstack\/mailstack\/example\/mail\/\*; deny 15 actions/);
    expect(row("aws.s3.BucketObjectv2", "mail-host-bundle")).toMatch(/s3:mail-backup-bucket-\w+\/host\/mailstack\/mailstack\/example\/mail\/bundles\/[0-9a-f]{64}\.json \d+ B aws:kms/);
    expect(row("aws.s3.BucketObjectv2", "mail-parameters-runtime")).toMatch(/s3:mail-backup-bucket-\w+\/host\/mailstack\/mailstack\/example\/mail\/runtime\.json \d+ B aws:kms/);
    expect(row("aws.ssm.Parameter", "mail-host-bundle-pointer")).toMatch(/ \/mailstack\/mailstack\/example\/mail\/host-bundle String$/);
    expect(row("aws.dlm.LifecyclePolicy", "mail-snapshots-policy")).toMatch(/daily at 03:00 UTC, keep 7/);
    expect(row("aws.iam.Role", "mail-snapshots-role")).toMatch(/assumed by dlm\.amazonaws\.com/);
    expect(run.stdout).toContain("https://aws-portal.amazon.com/gp/aws/html-forms-controller/contactus/ec2-email-limit-rdns-request");
  });

  test("writes the user data, the host bundle, every host file and a zone per domain", () => {
    const userData = readFileSync(join(out, "user-data.yaml"), "utf8");
    expect(userData.startsWith("#cloud-config\n")).toBe(true);
    const doc = load(userData) as { write_files: { path: string; content: string }[] };
    const bundle = JSON.parse(readFileSync(join(out, "host-bundle.json"), "utf8")) as { files: { path: string; content: string }[] };
    expect(bundle.files.length).toBeGreaterThan(20);
    for (const file of [...doc.write_files, ...bundle.files]) {
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
    const parameters = plan.resources.filter((r) => r.type === "aws:ssm/parameter:Parameter" && r.inputs.type === "SecureString");
    // The keys (DKIM, TLS, restic) and the manifest.
    expect(parameters.length).toBe(4);
    for (const p of parameters) expect(p.inputs.value).toBe("[secret]");
    // The restic password is a secret output; the repository's location is not.
    const outputs = (JSON.parse(json.stdout) as { outputs: Record<string, unknown> }).outputs;
    expect(outputs.resticPassword).toBe("[secret]");
    expect(outputs.resticRepository).toMatch(/^s3:https:\/\/s3\.us-east-1\.amazonaws\.com\/mail-backup-bucket-\w+\/restic$/);
    expect(outputs.backupReplicaBucket).toBeNull();
    for (const key of ["sesIdentities", "sesMailFromDomains", "sesSmtpUsername", "sesInboundBucket", "sesReceiptRuleSet"]) expect({ key, value: outputs[key] }).toEqual({ key, value: null });
    // What `mailstack check` reads: where the host reports its status and ships its journal.
    expect(outputs.parameterPath).toBe("/mailstack/mailstack/example/mail");
    expect(outputs.logGroupName).toBe("/mailstack/mailstack/example/mail");
    expect(JSON.parse(readFileSync(join(work, "json", "outputs.json"), "utf8")).resticPassword).toBe("[secret]");
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

test("an LDAP bind password in a config file appears nowhere in the plan's output, its parameters masked", () => {
  const password = "ldap-bind-canary #42";
  const file = stackFile("ldap", {
    ...MINIMAL,
    "mailstack:ldap": { url: "ldaps://ldap.example.net", bindDn: "cn=mail,dc=example,dc=net", bindPassword: password, baseDn: "ou=people,dc=example,dc=net" },
  });
  const out = join(work, "ldap");
  const run = mailstack(["plan", "--json", "--config", file, "--out", out]);
  expect(run.stderr).toBe("");
  expect(run.status).toBe(0);
  const plan = JSON.parse(run.stdout) as { resources: { type: string; name: string; inputs: Record<string, unknown> }[] };
  const ldapParameters = plan.resources.filter((r) => r.type === "aws:ssm/parameter:Parameter" && /ldap/.test(r.name));
  expect(ldapParameters.map((r) => [r.name, r.inputs.type, r.inputs.value])).toEqual([
    ["mail-parameters-ldap-dovecot-bind", "SecureString", "[secret]"],
    ["mail-parameters-ldap-postfix-map-cf", "SecureString", "[secret]"],
  ]);
  // The host files that name the directory are in the plan; the password is not.
  expect(readFileSync(join(out, "host/etc/dovecot/dovecot-ldap.conf.ext"), "utf8")).toContain("uris = ldaps://ldap.example.net\n");
  for (const text of [run.stdout, run.stderr, ...filesUnder(out).map((f) => readFileSync(f, "utf8"))]) {
    expect(text).not.toContain("ldap-bind-canary");
  }
});

test("a stack file's parameterPath pins where the stack's parameters, objects and pointer are (a stack from before the project was in the default)", () => {
  const out = join(work, "pinned-path");
  const byDefault = mailstack(["plan", "--config", stackFile("prod", MINIMAL), "--out", join(work, "default-path")]);
  expect(byDefault.status).toBe(0);
  expect(byDefault.stdout).toMatch(/ \/mailstack\/mailstack\/prod\/mail\/host-bundle String$/m);
  const run = mailstack(["plan", "--config", stackFile("prod", { ...MINIMAL, "mailstack:parameterPath": "/mailstack/prod/mail" }), "--out", out]);
  expect(run.stderr).toBe("");
  expect(run.status).toBe(0);
  const parameters = run.stdout.split("\n").filter((r) => r.startsWith("aws.ssm.Parameter "));
  expect(parameters.length).toBeGreaterThan(1);
  for (const row of parameters) expect(row).toMatch(/ \/mailstack\/prod\/mail\/[\w./-]+ (String|SecureString)\b/);
  expect(run.stdout).toMatch(/host\/mailstack\/prod\/mail\/runtime\.json/);
  expect(readFileSync(join(out, "user-data.yaml"), "utf8")).toContain("MAILSTACK_BUNDLE_POINTER=/mailstack/prod/mail/host-bundle");
});

test("a Route 53 stack plans one record set per name and type, in the zone looked up by name", () => {
  const file = stackFile("route53", {
    "mailstack:domain": "example.net",
    "mailstack:mailboxes": [{ address: "carol@example.net", password: "correct horse battery staple" }],
    "mailstack:dnsProvider": "route53",
    "mailstack:verificationRecords": { "example.net": ["google-site-verification=abc123"] },
  });
  const out = join(work, "route53");
  const run = mailstack(["plan", "--json", "--config", file, "--out", out]);
  expect(run.stderr).toBe("");
  expect(run.status).toBe(0);
  const plan = JSON.parse(run.stdout) as { resources: { type: string; name: string; inputs: Record<string, any> }[] };
  expect(plan.resources.filter((r) => r.type.startsWith("cloudflare:"))).toEqual([]);
  const sets = plan.resources.filter((r) => r.type === "aws:route53/record:Record");
  const apexTxt = sets.find((r) => r.name === "mail-dns-txt-example.net");
  expect(apexTxt?.inputs.records.sort()).toEqual(["google-site-verification=abc123", "v=spf1 mx -all"]);
  expect(sets.find((r) => r.name === "mail-dns-mx-example.net")?.inputs.records).toEqual(["10 mail.example.net"]);
  const zone = sets[0].inputs.zoneId;
  expect(zone).toMatch(/^Z[0-9A-Z]+$/);
  expect(sets.every((r) => r.inputs.zoneId === zone)).toBe(true);
  expect(readFileSync(join(out, "zones", "example.net.zone"), "utf8")).toContain('example.net. 3600 IN TXT "google-site-verification=abc123"');
});

test("with dnssec the plan signs each zone and the next steps give the DS records for the registrar", () => {
  const file = stackFile("dnssec", {
    "mailstack:domain": "example.net",
    "mailstack:mailboxes": [{ address: "carol@example.net", password: "correct horse battery staple" }],
    "mailstack:dnssec": true,
  });
  const run = mailstack(["plan", "--config", file, "--out", join(work, "dnssec")]);
  expect(run.stderr).toBe("");
  expect(run.status).toBe(0);
  expect(run.stdout).toMatch(/cloudflare\.ZoneDnssec +mail-dns-dnssec-example\.net +DNSSEC active/);
  expect(run.stdout).toMatch(/cloudflare\.DnsRecord +mail-dns-host-tlsa +TLSA +_25\._tcp\.mail\.example\.net 3 1 1 [0-9a-f]{20}/);
  expect(run.stdout).toMatch(/^6\. DNSSEC: add each zone's DS record at the domain's registrar/m);
  expect(run.stdout).toMatch(/^ +example\.net\. IN DS (\d+) 13 2 [0-9A-F]{64} +\(key tag \1, algorithm 13, digest type 2\)$/m);
});

test("with SES both ways the plan shows its resources, masks the relay's credentials and says how to leave the sandbox", () => {
  const file = stackFile("ses", { ...MINIMAL, "mailstack:sesOutbound": true, "mailstack:sesInbound": true, "mailstack:sesRegion": "eu-west-1" });
  const out = join(work, "ses");
  const run = mailstack(["plan", "--config", file, "--out", out]);
  expect(run.stderr).toBe("");
  expect(run.status).toBe(0);
  const rows = run.stdout.split("\n");
  const row = (type: string, name: string) => rows.find((r) => r.startsWith(type) && r.includes(` ${name} `)) ?? "";
  expect(row("aws.sesv2.EmailIdentity", "mail-ses-identity-example.net")).toMatch(/example\.net, BYODKIM \(key secret\), configuration set mailstack-mail-example-net in eu-west-1/);
  expect(row("aws.sesv2.EmailIdentityMailFromAttributes", "mail-ses-mail-from-example.net")).toMatch(/MAIL FROM bounce\.example\.net/);
  expect(row("aws.iam.UserPolicy", "mail-ses-smtp-send")).toMatch(/1 actions on ses:identity\/example\.net, ses:configuration-set\/mailstack-mail-example-net/);
  expect(row("aws.ses.ReceiptRule", "mail-ses-rule-carol@example.net")).toMatch(/carol@example\.net -> s3:mail-ses-inbound-bucket-\w+\/inbound\/carol@example\.net\/, TLS Optional/);
  expect(row("aws.ses.ActiveReceiptRuleSet", "mail-ses-active-rule-set")).toMatch(/ACTIVE in eu-west-1, replacing any other active rule set there/);
  expect(row("aws.ssm.Parameter", "mail-parameters-ses-smtp-credentials")).toMatch(/\/files\/ses\/smtp-credentials SecureString/);
  expect(row("cloudflare.DnsRecord", "mail-dns-ses-mail-from-mx-example.net")).toMatch(/MX +bounce\.example\.net 10 feedback-smtp\.eu-west-1\.amazonses\.com/);
  expect(run.stdout).toMatch(/^1\. Outgoing mail leaves through Amazon SES in eu-west-1\./m);
  expect(run.stdout).toMatch(/^6\. Amazon SES \(inbound-smtp\.eu-west-1\.amazonaws\.com\) is the domains' last MX/m);
  const outputs = JSON.parse(readFileSync(join(out, "outputs.json"), "utf8")) as Record<string, unknown>;
  expect(outputs).toMatchObject({ sesIdentities: ["example.net"], sesMailFromDomains: { "example.net": "bounce.example.net" }, sesReceiptRuleSet: "mailstack-mail.example.net" });
  expect(outputs.sesSmtpUsername).toMatch(/^AKIA[0-9A-F]{16}$/);
  expect(outputs.sesInboundBucket).toMatch(/^mail-ses-inbound-bucket-/);
  expect(readFileSync(join(out, "zones", "example.net.zone"), "utf8")).toContain("bounce.example.net. 3600 IN MX 10 feedback-smtp.eu-west-1.amazonses.com.");
  const resources = JSON.parse(readFileSync(join(out, "resources.json"), "utf8")) as { name: string; inputs: Record<string, any> }[];
  expect(resources.find((r) => r.name === "mail-parameters-ses-smtp-credentials")?.inputs.value).toBe("[secret]");
  expect(resources.find((r) => r.name === "mail-ses-identity-example.net")?.inputs.dkimSigningAttributes).toBe("[secret]");
  for (const text of [run.stdout, ...filesUnder(out).map((f) => readFileSync(f, "utf8"))]) expect(text).not.toMatch(/email-smtp\.eu-west-1\.amazonaws\.com\]:587 AKIA/);
});

describe("the plan follows the stack's region and partition", () => {
  const planIn = (region: string) => {
    const out = join(work, `region-${region}`);
    const run = mailstack(["plan", "--json", "--config", stackFile(region, { ...MINIMAL, "aws:region": region }), "--out", out]);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    const plan = JSON.parse(run.stdout) as { resources: { type: string; name: string; inputs: Record<string, any> }[]; outputs: Record<string, any> };
    return { plan, text: run.stdout, userData: readFileSync(join(out, "user-data.yaml"), "utf8"), settings: readFileSync(join(out, "host/etc/default/mailstack"), "utf8") };
  };
  const repositoryIn = (settings: string) => /MAILSTACK_BACKUP_REPOSITORY="([^"]+)"/.exec(settings)?.[1];

  test.each([
    ["eu-west-1", "aws", "amazonaws.com"],
    ["cn-north-1", "aws-cn", "amazonaws.com.cn"],
  ])("%s: ARNs in %s, zones of the region, one restic repository on the host and in the outputs", (region, partition, dnsSuffix) => {
    const { plan, text, userData, settings } = planIn(region);
    expect(text).not.toContain("us-east-1");
    expect(userData).not.toContain("us-east-1");
    expect(settings).not.toContain("us-east-1");
    const arns = text.match(/arn:[a-z-]+:[a-z0-9-]+:[a-z0-9-]*:/g) ?? [];
    expect(arns.length).toBeGreaterThan(5);
    for (const arn of new Set(arns)) expect(arn).toMatch(new RegExp(`^arn:${partition}:[a-z0-9-]+:(${region})?:$`));
    expect(plan.resources.find((r) => r.name === "mail-host-data")?.inputs.availabilityZone).toBe(`${region}a`);
    const repository = `s3:https://s3.${region}.${dnsSuffix}/${plan.outputs.backupBucket}/restic`;
    expect(plan.outputs.resticRepository).toBe(repository);
    expect(repositoryIn(settings)).toBe(repository);
    expect(settings).toContain(`AWS_DEFAULT_REGION="${region}"`);
    expect(userData).toContain(`AWS_DEFAULT_REGION=${region}`);
  });
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

describe("mistakes in the settings file itself exit 2 before any resource, naming the file and line", () => {
  const raw = (name: string, text: string) => {
    const file = join(work, `Pulumi.${name}.yaml`);
    writeFileSync(file, text);
    const out = join(work, `raw-${name}`);
    return { file, out, run: mailstack(["plan", "--config", file, "--out", out]) };
  };
  test.each([
    ["tab", "config:\n  aws:region: eu-west-1\n\tmailstack:domain: example.com\n", ":3:1: not valid YAML: tab characters must not be used in indentation"],
    ["indent", "config:\n  aws:region: eu-west-1\n   mailstack:domain: example.com\n", ":3:", "not valid YAML: bad indentation"],
    ["top-level", "aws:region: eu-west-1\ndomain: example.com\n", ":1: aws:region, domain are at the top level, where Pulumi ignores them; stack settings go under config:", "  mailstack:domain: …"],
    ["list", "- domain: example.com\n", ": is not a stack settings file"],
    ["config-list", "config:\n  - mailstack:domain: example.com\n", ":1: config: must hold the settings as key: value lines"],
    ["no-region", "config:\n  mailstack:domain: example.com\n", ": aws:region is not set, and the AWS provider needs it"],
  ])("%s", (name, text, ...phrases) => {
    const { file, out, run } = raw(name, text);
    expect(run.status).toBe(2);
    expect(run.stdout).toBe("");
    for (const phrase of phrases) expect(run.stderr).toContain(phrase);
    expect(run.stderr.startsWith(`mailstack: ${file}`)).toBe(true);
    expect(run.stderr).not.toMatch(/^\s+at /m);
    expect(existsSync(out)).toBe(false);
  });

  test("a configuration error names the file it came from", () => {
    const { file, run } = raw("bad-field", "config:\n  aws:region: eu-west-1\n  mailstack:domain: example.com\n  mailstack:mailboxes: []\n");
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(`mailstack: ${file}: invalid mailstack configuration (1 problem):\n  mailboxes: is empty`);
  });
});

test("secrets that resolve to bad values exit 2 with their fields and the stack file, like any config error", () => {
  const run = mailstack(["plan", "--program", join(__dirname, "fixtures", "bad-secret"), "--out", join(work, "bad-secret")]);
  expect(run.status).toBe(2);
  expect(run.stderr).toBe(
    `mailstack: ${join(__dirname, "fixtures", "bad-secret", "Pulumi.example.yaml")}: invalid mailstack configuration (3 problems):\n` +
      "  mailboxes[0].password: is shorter than 12 characters; use a longer passphrase\n" +
      "  mailboxes[0].appPasswords[0].password: is shorter than 16 characters; use a longer passphrase\n" +
      "  mailboxes[0].appPasswords[2].password: is the same as mailboxes[0].appPasswords[1].password; an app password must be a secret of its own, or revoking it revokes nothing\n",
  );
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
    // The failing child is named with the component it belongs to, and the cause.
    ["broken-component", "shop-sign (fixture:index:Sign) in shop (fixture:index:Shop) was not created: the shop's address cannot be read"],
    ["stuck-component", "did not finish within 3 s; still waiting for shop-sign (fixture:index:Sign) in shop (fixture:index:Shop)"],
    ["unused-apply", "unhandled error: nobody waits for this"],
  ])("%s", (name, message) => {
    const run = mailstack(["plan", "--program", fixture(name), "--out", join(work, name), "--timeout", "3"]);
    expect(run.stdout).toBe("");
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(message);
    expect(existsSync(join(work, name))).toBe(false);
  });
});

test("the CLI's bin entry is executable after the build", () => {
  expect(statSync(cli).mode & 0o111).not.toBe(0);
  expect(execFileSync(process.execPath, [cli, "--help"], { encoding: "utf8" })).toContain("mailstack plan");
});
