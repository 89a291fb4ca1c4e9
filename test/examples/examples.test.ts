// The example projects under examples/, run under the recording mock runtime with the stack
// config each one reads, and type-checked with their own tsconfig as a user would.
//
// Each example's index.ts is required inside the program callback: jest transforms it and
// maps @mailstack/* to the sources. A module runs once per test file, so each example runs
// once (in beforeAll) and the tests below read what it registered.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { runProgram, type RecordedResource, type Run } from "../support/harness";
import { SAMPLE_HASH } from "../support/fixtures";
import { plainInputStrings } from "../pulumi/helpers";
import { COMPLETE_PASSWORDS, runComplete } from "./complete";

const ROOT = join(__dirname, "..", "..");

const INSTANCE = "aws:ec2/instance:Instance";
const VOLUME = "aws:ebs/volume:Volume";
const SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup";
const INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";
const DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord";
const PARAMETER = "aws:ssm/parameter:Parameter";
const BUCKET = "aws:s3/bucket:Bucket";
const LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration";

function one(run: Run, type: string): RecordedResource {
  const found = run.ofType(type);
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  return found[0];
}

function invoked(run: Run, token: string) {
  return run.record.invokes.filter((i) => i.token === token);
}

/** Records of MailStack's own zone, by record name and type. */
function record(run: Run, name: string, type: string): RecordedResource {
  const found = run.ofType(DNS_RECORD).filter((r) => r.inputs.name === name && r.inputs.type === type && String(r.inputs.comment).startsWith("mailstack:"));
  if (found.length !== 1) throw new Error(`expected one ${type} record ${name}, found ${found.length}`);
  return found[0];
}

describe("examples/complete", () => {
  const passwords = COMPLETE_PASSWORDS;
  let run: Run;

  beforeAll(async () => {
    run = await runComplete({ adminCidrs: JSON.stringify(["203.0.113.0/24"]) });
  });

  test("one instance with the explicit size, volumes and IMDSv2", () => {
    const instance = one(run, INSTANCE);
    expect(instance.inputs.instanceType).toBe("t4g.medium");
    expect(instance.inputs.rootBlockDevice).toMatchObject({ volumeSize: 20, encrypted: true });
    expect(instance.inputs.metadataOptions).toMatchObject({ httpTokens: "required" });
    expect(instance.inputs.tags).toMatchObject({ project: "mail", environment: "prod", "cost-center": "it" });
    expect(one(run, VOLUME).inputs).toMatchObject({ size: 50, encrypted: true, type: "gp3" });
    // The AMI matches the instance type's architecture.
    const ami = invoked(run, "aws:ec2/getAmi:getAmi");
    expect(ami).toHaveLength(1);
    expect(ami[0].inputs.filters).toContainEqual({ name: "architecture", values: ["arm64"] });
  });

  test("DNS records for both domains, with the chosen DMARC stage", () => {
    const records = run.ofType(DNS_RECORD);
    // Host A, SPF and two CAA; per domain six TXT-or-MX (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT),
    // seven SRV and three CNAME; the report authorisation for example.org.
    expect(records).toHaveLength(4 + 2 * 16 + 1);
    expect(record(run, "example.com", "MX").inputs).toMatchObject({ content: "mail.example.com", priority: 10, proxied: false });
    expect(record(run, "example.org", "MX").inputs).toMatchObject({ content: "mail.example.com" });
    expect(record(run, "mail._domainkey.example.org", "TXT").inputs.content).toMatch(/^"v=DKIM1; k=rsa; p=[A-Za-z0-9+/]/);
    expect(record(run, "_dmarc.example.org", "TXT").inputs.content).toBe('"v=DMARC1; p=none; rua=mailto:dmarc@example.com; adkim=r; aspf=r"');
    expect(record(run, "example.org._report._dmarc.example.com", "TXT").inputs.content).toBe('"v=DMARC1"');
    expect(record(run, "mail.example.com", "A").inputs.content).toBe(run.outputs.publicIp);
    // pop3: true announces POP3S; plaintext POP3 stays "not offered".
    expect(record(run, "_pop3s._tcp.example.org", "SRV").inputs.data).toEqual({ priority: 0, weight: 1, port: 995, target: "mail.example.com" });
    expect(record(run, "_pop3._tcp.example.org", "SRV").inputs.data).toEqual({ priority: 0, weight: 0, port: 0, target: "." });
    expect(records.filter((r) => r.inputs.type === "TLSA")).toEqual([]);
  });

  test("the runtime files hold the hashed passwords, as secrets: keys in parameters under the stack's path, the rest in the runtime object", () => {
    const all = run.ofType(PARAMETER);
    // Besides the runtime files: the host bundle's pointer, which names a hash and holds no secret
    // (the AWS provider keeps every parameter's value secret in the state all the same).
    expect(all.filter((p) => p.inputs.type !== "SecureString").map((p) => [p.inputs.name, p.inputs.type])).toEqual([["/mailstack/mailstack-example-complete/prod/mail/host-bundle", "String"]]);
    const parameters = all.filter((p) => p.inputs.type === "SecureString");
    expect(parameters.map((p) => p.inputs.name)).toContain("/mailstack/mailstack-example-complete/prod/mail/manifest");
    for (const p of parameters) {
      expect(p.inputs.name).toMatch(/^\/mailstack\/mailstack-example-complete\/prod\/mail\//);
      expect(p.secretPaths).toContain("value");
    }
    const object = run.named("mail-parameters-runtime");
    expect(object.inputs.key).toBe("host/mailstack/mailstack-example-complete/prod/mail/runtime.json");
    expect(object.secretPaths).toContain("content");
    const files = (JSON.parse(object.inputs.content) as { files: Record<string, string> }).files;
    expect(files.users).toMatch(/^alice@example\.com:\{BLF-CRYPT\}\$2b\$10\$/m);
    expect(files.users).toContain(`carol@example.org:${SAMPLE_HASH}:`);
    expect(files.users).toContain("userdb_quota_rule=*:storage=10240M");
    // A plain password is an input of the resource that hashes it, and there only as a secret.
    const plain = JSON.stringify(run.record.resources.map((r) => plainInputStrings(r)));
    for (const password of Object.values(passwords)) expect(plain).not.toContain(password);
    const holders = run.record.resources.filter((r) => Object.values(passwords).some((p) => JSON.stringify(r.inputs).includes(p)));
    expect(holders.map((r) => [r.name, r.secretPaths])).toEqual([["mail-parameters-password-hashes", ["passwords"]]]);
    expect(files.aliases).toContain("hello@example.org info@example.com");
    expect(files.aliases).toContain("abuse@example.org bob@example.com");
  });

  test("no secret and no mailbox reaches the user data or the host bundle", () => {
    const userData = run.userData();
    const bundle = run.named("mail-host-bundle");
    for (const text of [userData, bundle.inputs.content as string]) expect(text).not.toMatch(/BLF-CRYPT|alice@|carol@|PRIVATE KEY/);
    expect(bundle.secretPaths).toEqual([]);
    expect(userData).toContain("dovecot-pop3d");
    expect(bundle.inputs.content).toContain("message_size_limit = 41943040");
  });

  test("firewall opens POP3S and SSH only from the admin network", () => {
    const ingress = run.ofType(INGRESS).map((r) => r.inputs);
    expect(ingress.map((i) => i.fromPort).sort((a, b) => a - b)).toEqual([22, 25, 80, 443, 465, 587, 993, 995]);
    expect(ingress.find((i) => i.fromPort === 22)).toMatchObject({ cidrIpv4: "203.0.113.0/24" });
  });

  test("backups are kept for the chosen retention, and outputs are exported", () => {
    expect(one(run, BUCKET).protect).toBe(true);
    expect(one(run, LIFECYCLE).inputs.rules[0].noncurrentVersionExpiration).toEqual({ noncurrentDays: 180 });
    expect(run.outputs.hostname).toBe("mail.example.com");
    expect(run.outputs.instanceId).toBe(one(run, INSTANCE).id);
    expect(run.outputs.backupBucket).toBe(one(run, BUCKET).state.bucket);
    expect(run.outputs.dnsRecords).toHaveLength(4 + 2 * 16 + 1);
    expect(run.outputs.dsRecords).toEqual([]);
    expect(run.outputs.nextSteps).toContain("ec2-email-limit-rdns-request");
  });
});

describe("examples/existing-vpc", () => {
  const project = "mailstack-example-existing-vpc";
  const ids = {
    vpc: "vpc-0fedcba9876543210",
    subnet: "subnet-0123456789abcdef0",
    zone: "0123456789abcdef0123456789abcdef",
    ami: "ami-0a1b2c3d4e5f67890",
  };
  let run: Run;

  beforeAll(async () => {
    run = await runProgram(() => require("../../examples/existing-vpc/index.ts"), {
      project,
      config: {
        [`${project}:domain`]: "example.com",
        [`${project}:vpcId`]: ids.vpc,
        [`${project}:subnetId`]: ids.subnet,
        [`${project}:cloudflareZoneIds`]: JSON.stringify({ "example.com": ids.zone }),
        [`${project}:amiId`]: ids.ami,
        [`${project}:adminPassword`]: "correct horse battery staple",
      },
      secretKeys: [`${project}:adminPassword`],
    });
  });

  test("no default-VPC, zone or availability-zone lookup; the subnet is read by id", () => {
    expect(run.record.invokes.filter((i) => i.token === "aws:ec2/getVpc:getVpc" && i.inputs.default === true)).toEqual([]);
    expect(invoked(run, "aws:ec2/getVpc:getVpc")).toEqual([]);
    expect(invoked(run, "aws:index/getAvailabilityZones:getAvailabilityZones")).toEqual([]);
    expect(invoked(run, "aws:ec2/getSubnet:getSubnet").map((i) => i.inputs)).toEqual([{ id: ids.subnet }]);
  });

  test("the instance runs in the given subnet, the security group in the given VPC", () => {
    expect(one(run, INSTANCE).inputs.subnetId).toBe(ids.subnet);
    expect(one(run, SECURITY_GROUP).inputs.vpcId).toBe(ids.vpc);
    // The zone comes from the subnet (the mock's answer for it), and the data volume follows.
    expect(one(run, VOLUME).inputs.availabilityZone).toBe("us-east-1a");
    expect(run.outputs.availabilityZone).toBe("us-east-1a");
    expect(run.outputs.securityGroupId).toBe(one(run, SECURITY_GROUP).id);
  });

  test("every record goes into the given zone, with no zone lookup", () => {
    expect(invoked(run, "cloudflare:index/getZone:getZone")).toEqual([]);
    const records = run.ofType(DNS_RECORD);
    expect(records.length).toBeGreaterThan(0);
    for (const r of records) expect(r.inputs.zoneId).toBe(ids.zone);
  });

  test("the pinned AMI is used and never looked up, and changing it is not ignored", () => {
    const instance = one(run, INSTANCE);
    expect(instance.inputs.ami).toBe(ids.ami);
    expect(instance.ignoreChanges).not.toContain("ami");
    expect(invoked(run, "aws:ec2/getAmi:getAmi")).toEqual([]);
  });
});

describe("examples/extend", () => {
  const project = "mailstack-example-extend";
  let run: Run;

  beforeAll(async () => {
    run = await runProgram(() => require("../../examples/extend/index.ts"), {
      project,
      config: {
        "mailstack:domain": "example.com",
        "mailstack:mailboxes": JSON.stringify([{ address: "alice@example.com", password: "correct horse battery staple" }]),
        "mailstack:alertEmail": "Ops@Example.net",
        [`${project}:bimiLogoUrl`]: "https://example.com/logo.svg",
        [`${project}:backupReaderRole`]: "mail-admins",
      },
      secretKeys: ["mailstack:mailboxes"],
    });
  });

  /** The one resource of a type that the example's own component owns. */
  const extra = (type: string) => {
    const component = one(run, "mailstack-example:extend:MailExtras");
    expect(component.parent).toMatch(/pulumi:pulumi:Stack::/);
    const found = run.ofType(type).filter((r) => r.parent === component.urn);
    expect(found).toHaveLength(1);
    return found[0];
  };

  test("MailStack is built from the mailstack: keys", () => {
    expect(one(run, "mailstack:index:MailStack").name).toBe("mail");
    expect(one(run, INSTANCE)).toBeDefined();
    expect(record(run, "example.com", "MX")).toBeDefined();
    expect(run.ofType(PARAMETER).length).toBeGreaterThan(0);
  });

  test("the CPU-credit alarm watches MailStack's instance and notifies MailStack's alert topic", () => {
    const alarm = extra("aws:cloudwatch/metricAlarm:MetricAlarm");
    const topicArn = one(run, "aws:sns/topic:Topic").state.arn;
    expect(topicArn).toMatch(/^arn:aws:sns:/);
    expect(alarm.inputs).toMatchObject({
      namespace: "AWS/EC2",
      metricName: "CPUCreditBalance",
      dimensions: { InstanceId: one(run, INSTANCE).id },
      comparisonOperator: "LessThanThreshold",
      alarmActions: [topicArn],
      okActions: [topicArn],
    });
    // MailStack's own subscription carries the address as MailStack normalised it.
    expect(one(run, "aws:sns/topicSubscription:TopicSubscription").inputs).toMatchObject({ protocol: "email", endpoint: "ops@example.net", topic: topicArn });
  });

  test("the BIMI record goes into MailStack's zone for the domain", () => {
    const bimi = extra(DNS_RECORD);
    expect(bimi.inputs).toMatchObject({
      zoneId: record(run, "example.com", "MX").inputs.zoneId,
      name: "default._bimi.example.com",
      type: "TXT",
      content: '"v=BIMI1; l=https://example.com/logo.svg;"',
    });
    expect(bimi.inputs.zoneId).toMatch(/^[0-9a-f]{32}$/);
  });

  test("the admin role gets read-only access to MailStack's backup bucket", () => {
    const policy = extra("aws:iam/policy:Policy");
    const attachment = extra("aws:iam/rolePolicyAttachment:RolePolicyAttachment");
    const bucketArn = one(run, BUCKET).state.arn;
    expect(bucketArn).toMatch(/^arn:aws:s3:::/);
    const document = JSON.parse(policy.inputs.policy);
    const resources = document.Statement.flatMap((s: { Resource: string | string[] }) => [s.Resource].flat());
    expect(resources.sort()).toEqual([bucketArn, `${bucketArn}/*`]);
    const actions: string[] = document.Statement.flatMap((s: { Action: string[] }) => s.Action);
    for (const action of actions) expect(action).toMatch(/^s3:(Get|List)/);
    expect(document.Statement.every((s: { Effect: string }) => s.Effect === "Allow")).toBe(true);
    expect(attachment.inputs).toMatchObject({ role: "mail-admins", policyArn: policy.state.arn });
    expect(policy.state.arn).toMatch(/^arn:aws:iam:/);
  });

  test("outputs include MailStack's and the extension's", () => {
    expect(run.outputs.hostname).toBe("mail.example.com");
    expect(run.outputs.instanceId).toBe(one(run, INSTANCE).id);
    expect(Object.keys(run.outputs)).toEqual(expect.arrayContaining(["alarmTopicArn", "backupBucket", "nextSteps"]));
  });
});

/** Runs tsc from node_modules/.bin on one example, as `npx tsc -p examples/<name> --noEmit`. */
function typecheck(name: string): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(ROOT, "node_modules", ".bin", "tsc"), ["-p", join("examples", name), "--noEmit"], { cwd: ROOT });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, output }));
  });
}

// The examples resolve @mailstack/pulumi to the built package (packages/pulumi/dist), as a
// user's project would; `npm test` builds it first (pretest), and so does `npm ci`.
describe("the examples type-check", () => {
  test.each(["complete", "existing-vpc", "extend"])("examples/%s", async (name) => {
    const { status, output } = await typecheck(name);
    if (status !== 0) throw new Error(`tsc -p examples/${name} --noEmit exited with ${status}:\n${output}`);
    expect(status).toBe(0);
  });
});
