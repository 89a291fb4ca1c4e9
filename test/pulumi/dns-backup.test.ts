// Cloudflare records, the backup bucket and the stack's outputs.
import { dkimPublicKeyFromPem, dnsRecords, parseConfig } from "@mailstack/core";
import { MailStack, PORT_25_REQUEST_URL } from "@mailstack/pulumi";
import { fullConfig } from "../support/fixtures";
import { type Run, runProgram } from "../support/harness";
import { mockZoneId, stackArgs } from "./args";
import { list, one, statements, T, txtStrings } from "./helpers";

const COM_ZONE = "0123456789abcdef0123456789abcdef";
const ORG_ZONE = "fedcba9876543210fedcba9876543210";
const LONG_REPORTS = "dmarc-aggregate-reports-for-every-hosted-domain@example.com";

/** fullConfig with a 30-day retention and DMARC reports to a long alias. */
function givenConfig() {
  const config = fullConfig();
  config.aliases = [...(config.aliases ?? []), { address: LONG_REPORTS, to: ["alice@example.com"] }];
  config.dmarcReports = LONG_REPORTS;
  config.backupRetentionDays = 30;
  return config;
}

let full: Run; // fullConfig, zones looked up by name, default retention
let given: Run; // both zone ids given, 30-day retention, a DMARC report address long enough to truncate comments
let partial: Run; // only example.org's zone id given, protect: false

beforeAll(async () => {
  full = await runProgram(() => {
    const mail = new MailStack("mail", stackArgs(fullConfig()));
    return {
      publicIp: mail.publicIp,
      hostname: mail.hostname,
      instanceId: mail.instanceId,
      dnsRecords: mail.dnsRecords,
      backupBucketName: mail.backupBucketName,
      nextSteps: mail.nextSteps,
    };
  });
  given = await runProgram(() => {
    new MailStack("mail", stackArgs(givenConfig(), { cloudflareZoneIds: { "example.com": COM_ZONE, "example.org": ORG_ZONE } }));
  });
  partial = await runProgram(() => {
    new MailStack("mail", stackArgs(fullConfig(), { cloudflareZoneIds: { "example.org": ORG_ZONE }, protect: false }));
  });
});

/** The base64 public key of the signing DKIM selector (`mail`). */
const dkimPublicKey = (run: Run) => dkimPublicKeyFromPem(run.named("mail-dkim-mail-key").state.publicKeyPem);

/** The core's record set with this run's Elastic IP and DKIM key. */
function expectedRecords(run: Run, config = fullConfig()) {
  return dnsRecords(parseConfig(config), { ipv4: one(run, T.eip).state.publicIp, dkimPublicKeys: { mail: dkimPublicKey(run) } });
}

describe("DNS", () => {
  test("publishes one unproxied Cloudflare record per core record, with the real address and key", () => {
    const expected = expectedRecords(full);
    const published = full.ofType(T.dnsRecord);
    expect(published.map((r) => r.name).sort()).toEqual(expected.map((r) => `mail-dns-${r.key}`).sort());
    for (const record of expected) {
      const resource = full.named(`mail-dns-${record.key}`);
      expect(resource.inputs).toEqual(expect.objectContaining({ name: record.name, type: record.type, ttl: record.ttl, proxied: false }));
      // SRV, CAA and TLSA go as data, from which Cloudflare derives the content.
      if (record.data) {
        const { kind: _kind, ...fields } = record.data;
        expect({ key: record.key, data: resource.inputs.data, content: resource.inputs.content }).toEqual({ key: record.key, data: fields, content: undefined });
      } else {
        expect({ key: record.key, data: resource.inputs.data, content: resource.inputs.content }).toEqual({ key: record.key, data: undefined, content: record.content });
      }
      expect(resource.inputs.priority).toBe(record.data?.kind === "SRV" ? record.data.priority : record.priority);
    }
    expect(published.filter((r) => r.inputs.data !== undefined).length).toBeGreaterThan(10);
    for (const run of [full, given, partial]) for (const r of run.ofType(T.dnsRecord)) expect(r.inputs.proxied).toBe(false);
    const hostA = full.named("mail-dns-host-a");
    expect(hostA.inputs.content).toBe(full.outputs.publicIp);
  });

  test("TXT content is quoted strings of at most 255 bytes; the DKIM key needs two", () => {
    const publicKey = dkimPublicKey(full);
    const txt = full.ofType(T.dnsRecord).filter((r) => r.inputs.type === "TXT");
    expect(txt.length).toBeGreaterThanOrEqual(7);
    for (const record of txt) {
      const strings = txtStrings(record.inputs.content);
      for (const s of strings) expect(Buffer.byteLength(s, "utf8")).toBeLessThanOrEqual(255);
    }
    const dkim = txt.filter((r) => r.inputs.name.startsWith("mail._domainkey."));
    expect(dkim.map((r) => r.inputs.name).sort()).toEqual(["mail._domainkey.example.com", "mail._domainkey.example.org"]);
    for (const record of dkim) {
      const strings = txtStrings(record.inputs.content);
      expect(strings).toHaveLength(2);
      expect(strings.join("")).toBe(`v=DKIM1; k=rsa; p=${publicKey}`);
    }
  });

  test("zones are looked up by name only when no id is given", () => {
    const lookups = (run: Run) => run.record.invokes.filter((i) => i.token === T.getZone).map((i) => i.inputs.filter?.name).sort();
    const zoneOf = (run: Run, domain: string) => {
      const records = run.ofType(T.dnsRecord).filter((r) => r.inputs.name === domain && r.inputs.type === "MX");
      expect(records).toHaveLength(1);
      return records[0].inputs.zoneId;
    };
    expect(lookups(full)).toEqual(["example.com", "example.org"]);
    expect(zoneOf(full, "example.com")).toBe(mockZoneId("example.com"));
    expect(zoneOf(full, "example.org")).toBe(mockZoneId("example.org"));

    expect(lookups(given)).toEqual([]);
    expect(zoneOf(given, "example.com")).toBe(COM_ZONE);
    expect(zoneOf(given, "example.org")).toBe(ORG_ZONE);

    expect(lookups(partial)).toEqual(["example.com"]);
    expect(zoneOf(partial, "example.com")).toBe(mockZoneId("example.com"));
    expect(zoneOf(partial, "example.org")).toBe(ORG_ZONE);

    // Every record lands in the zone of its domain (the report authorisation for example.org
    // lives in example.com's zone).
    const zones: Record<string, string> = { "example.com": COM_ZONE, "example.org": ORG_ZONE };
    const expected = expectedRecords(given, givenConfig());
    expect(given.ofType(T.dnsRecord)).toHaveLength(expected.length);
    for (const record of expected) expect(given.named(`mail-dns-${record.key}`).inputs.zoneId).toBe(zones[record.zone]);
  });

  test("record comments fit Cloudflare's 100 characters", () => {
    for (const run of [full, given, partial]) {
      for (const r of run.ofType(T.dnsRecord)) {
        expect(r.inputs.comment.startsWith("mailstack: ")).toBe(true);
        expect(r.inputs.comment.length).toBeLessThanOrEqual(100);
      }
    }
    // The long report address makes comments that must be cut, not dropped or left long.
    const long = expectedRecords(given, givenConfig()).filter((r) => `mailstack: ${r.comment}`.length > 100);
    expect(long.length).toBeGreaterThan(0);
    for (const record of long) {
      expect(given.named(`mail-dns-${record.key}`).inputs.comment).toBe(`mailstack: ${record.comment}`.slice(0, 100));
    }
  });
});

describe("backup bucket", () => {
  const cases = (): [Run, number, boolean][] => [
    [full, 90, true],
    [given, 30, true],
    [partial, 90, false],
  ];

  test("is protected by default, never force-destroyed, versioned, KMS-encrypted and closed to the public", () => {
    for (const [run, , protect] of cases()) {
      const bucket = one(run, T.bucket);
      expect(bucket.protect).toBe(protect);
      expect(bucket.inputs.forceDestroy).toBe(false);
      const sub = (type: string) => {
        const resource = one(run, type);
        expect(resource.inputs.bucket).toBe(bucket.id);
        return resource.inputs;
      };
      expect(sub("aws:s3/bucketVersioning:BucketVersioning").versioningConfiguration).toEqual({ status: "Enabled" });
      expect(sub("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration").rules).toEqual([
        expect.objectContaining({ applyServerSideEncryptionByDefault: expect.objectContaining({ sseAlgorithm: "aws:kms" }), bucketKeyEnabled: true }),
      ]);
      expect(sub("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")).toEqual(
        expect.objectContaining({ blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true }),
      );
      expect(sub("aws:s3/bucketOwnershipControls:BucketOwnershipControls").rule).toEqual({ objectOwnership: "BucketOwnerEnforced" });
    }
  });

  test("denies every S3 action without TLS, on the bucket and its objects", () => {
    for (const [run] of cases()) {
      const bucket = one(run, T.bucket);
      const policy = one(run, "aws:s3/bucketPolicy:BucketPolicy");
      expect(policy.inputs.bucket).toBe(bucket.id);
      const all = statements(policy.inputs.policy);
      // Nothing is granted by the bucket policy, only denied.
      expect(all.filter((s) => s.Effect !== "Deny")).toEqual([]);
      const tls = all.filter((s) => s.Condition?.Bool?.["aws:SecureTransport"] === "false");
      expect(tls).toHaveLength(1);
      expect(list(tls[0].Action)).toEqual(["s3:*"]);
      expect(tls[0].Principal === "*" || JSON.stringify(tls[0].Principal) === JSON.stringify({ AWS: "*" })).toBe(true);
      expect(list(tls[0].Resource).sort()).toEqual([bucket.state.arn, `${bucket.state.arn}/*`].sort());
      // S3 refuses a policy while the public access block is being applied.
      expect(policy.dependsOn).toContain(one(run, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").urn);
    }
  });

  test("expires noncurrent versions after backupRetentionDays", () => {
    for (const [run, days] of cases()) {
      const lifecycle = one(run, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration");
      expect(lifecycle.inputs.bucket).toBe(one(run, T.bucket).id);
      const rules = lifecycle.inputs.rules;
      expect(rules).toHaveLength(1);
      expect(rules[0].status).toBe("Enabled");
      expect(rules[0].filter ?? {}).toEqual({}); // every object
      expect(rules[0].noncurrentVersionExpiration).toEqual({ noncurrentDays: days });
      // Current versions are never expired by the lifecycle, only old ones.
      expect(rules[0].expiration?.days).toBeUndefined();
    }
  });
});

describe("outputs", () => {
  test("publicIp, hostname, instanceId, dnsRecords, backupBucketName and nextSteps", () => {
    const { outputs } = full;
    const eip = one(full, T.eip);
    expect(outputs.publicIp).toBe(eip.state.publicIp);
    expect(outputs.publicIp).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(outputs.hostname).toBe("mail.example.com");
    expect(outputs.instanceId).toBe(one(full, T.instance).id);
    expect(outputs.dnsRecords).toEqual(expectedRecords(full));
    expect(outputs.backupBucketName).toBe(one(full, T.bucket).state.bucket);

    const steps: string = outputs.nextSteps;
    expect(PORT_25_REQUEST_URL).toBe("https://aws-portal.amazon.com/gp/aws/html-forms-controller/contactus/ec2-email-limit-rdns-request");
    expect(steps).toContain(PORT_25_REQUEST_URL);
    expect(steps).toContain(outputs.publicIp);
    expect(steps).toContain("mail.example.com");
    expect(steps).toContain(outputs.instanceId);
  });
});
