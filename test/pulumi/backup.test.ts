// The backup side in the cloud: customer KMS key, Object Lock, the replica in another region,
// the lifecycle's storage classes, what the host's role may do to the bucket, and the EBS
// snapshot policy.
import { BACKUP_DENIED_ACTIONS, MailBackup, MailStack, MailStackConfigError, noncurrentTransitions } from "@mailstack/pulumi";
import { fullConfig } from "../support/fixtures";
import { type RecordedResource, type Run, runFailing, runProgram } from "../support/harness";
import { stackArgs } from "./args";
import { allows, list, one, type Statement, statements, T } from "./helpers";

const KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const REGION = { "aws:region": "us-east-1" };
const S = {
  lock: "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
  replication: "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
  encryption: "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
  lifecycle: "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
  versioning: "aws:s3/bucketVersioning:BucketVersioning",
  dlm: "aws:dlm/lifecyclePolicy:LifecyclePolicy",
  attachment: "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
  password: "random:index/randomPassword:RandomPassword",
};

let plain: Run; // fullConfig: aws/s3 key, no lock, no replica, 90-day retention
let hardened: Run; // customer key, GOVERNANCE lock of 30 days, replica in eu-central-1, 200-day retention, 14 snapshots
let throwaway: Run; // protect: false

beforeAll(async () => {
  plain = await runProgram(() => {
    const mail = new MailStack("mail", stackArgs(fullConfig()));
    expect(mail.backupReplicaBucketName).toBeUndefined();
    return { resticRepository: mail.resticRepository };
  });
  hardened = await runProgram(
    () => {
      const mail = new MailStack(
        "mail",
        stackArgs({
          ...fullConfig(),
          backupRetentionDays: 200,
          backupObjectLock: { mode: "GOVERNANCE", days: 30 },
          backupReplicaRegion: "eu-central-1",
          backupKmsKeyArn: KEY,
          snapshotRetentionDays: 14,
        }),
      );
      return { backupReplicaBucketName: mail.backupReplicaBucketName };
    },
    { config: REGION },
  );
  throwaway = await runProgram(() => {
    new MailStack("mail", stackArgs(fullConfig(), { protect: false }));
  });
});

const bucket = (run: Run) => run.named("mail-backup-bucket");
const replica = (run: Run) => run.named("mail-backup-replica-bucket");
const arnOf = (r: RecordedResource): string => r.state.arn;

describe("bucket encryption", () => {
  test("SSE-KMS with the bucket key; the AWS-managed aws/s3 key unless a customer key is given", () => {
    const rule = (run: Run, name: string) => {
      const encryption = run.named(name);
      expect(encryption.inputs.rules).toHaveLength(1);
      return encryption.inputs.rules[0];
    };
    expect(rule(plain, "mail-backup-encryption")).toEqual({ applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms" }, bucketKeyEnabled: true });
    expect(rule(hardened, "mail-backup-encryption")).toEqual({ applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms", kmsMasterKeyId: KEY }, bucketKeyEnabled: true });
    // The replica uses its own region's aws/s3 key: a key of the primary's region cannot serve it.
    expect(rule(hardened, "mail-backup-replica-encryption")).toEqual({ applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms" }, bucketKeyEnabled: true });
  });
});

describe("Object Lock", () => {
  test("is off by default, and never set on the bucket itself, whose change would replace it", () => {
    expect(plain.ofType(S.lock)).toEqual([]);
    for (const run of [plain, hardened]) for (const b of run.ofType(T.bucket)) expect(b.inputs.objectLockEnabled).toBeUndefined();
  });

  test("applies the configured default retention to the bucket and its replica, once each is versioned", () => {
    const locks = hardened.ofType(S.lock);
    expect(locks.map((l) => l.name).sort()).toEqual(["mail-backup-object-lock", "mail-backup-replica-object-lock"]);
    for (const [name, b, prefix] of [
      ["mail-backup-object-lock", bucket(hardened), "mail-backup"],
      ["mail-backup-replica-object-lock", replica(hardened), "mail-backup-replica"],
    ] as const) {
      const lock = hardened.named(name);
      expect(lock.inputs.bucket).toBe(b.id);
      expect(lock.inputs.objectLockEnabled).toBe("Enabled");
      expect(lock.inputs.rule).toEqual({ defaultRetention: { mode: "GOVERNANCE", days: 30 } });
      expect(lock.dependsOn).toContain(hardened.named(`${prefix}-versioning`).urn);
    }
  });
});

describe("replica", () => {
  test("exists only with a replica region", () => {
    expect(plain.ofType(T.bucket).map((b) => b.name)).toEqual(["mail-backup-bucket"]);
    expect(plain.ofType(S.replication)).toEqual([]);
    expect(hardened.ofType(T.bucket).map((b) => b.name).sort()).toEqual(["mail-backup-bucket", "mail-backup-replica-bucket"]);
  });

  test("is hardened like the primary, in the replica region, protected", () => {
    const r = replica(hardened);
    expect(r.inputs.region).toBe("eu-central-1");
    expect(r.inputs.forceDestroy).toBe(false);
    expect(r.protect).toBe(true);
    const sub = (suffix: string) => {
      const resource = hardened.named(`mail-backup-replica-${suffix}`);
      expect({ suffix, bucket: resource.inputs.bucket, region: resource.inputs.region }).toEqual({ suffix, bucket: r.id, region: "eu-central-1" });
      return resource;
    };
    expect(sub("versioning").inputs.versioningConfiguration).toEqual({ status: "Enabled" });
    expect(sub("ownership").inputs.rule).toEqual({ objectOwnership: "BucketOwnerEnforced" });
    expect(sub("public-access").inputs).toEqual(expect.objectContaining({ blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true }));
    sub("encryption");
    sub("lifecycle");
    const [tls] = statements(sub("tls-only").inputs.policy);
    expect(tls).toEqual(expect.objectContaining({ Effect: "Deny", Action: "s3:*", Resource: [arnOf(r), `${arnOf(r)}/*`], Condition: { Bool: { "aws:SecureTransport": "false" } } }));
  });

  test("receives every version and delete marker, re-encrypted with the replica region's key, after both buckets are versioned", () => {
    const replication = one(hardened, S.replication);
    const role = hardened.named("mail-backup-replication-role");
    expect(replication.inputs.bucket).toBe(bucket(hardened).id);
    expect(replication.inputs.role).toBe(role.state.arn);
    expect(replication.inputs.rules).toEqual([
      {
        id: "offsite",
        status: "Enabled",
        filter: { prefix: "" },
        deleteMarkerReplication: { status: "Enabled" },
        sourceSelectionCriteria: { sseKmsEncryptedObjects: { status: "Enabled" } },
        destination: { bucket: arnOf(replica(hardened)), storageClass: "STANDARD_IA", encryptionConfiguration: { replicaKmsKeyId: expect.stringMatching(/^arn:aws:kms:eu-central-1:123456789012:key\//) } },
      },
    ]);
    for (const name of ["mail-backup-versioning", "mail-backup-replica-versioning", "mail-backup-replication-policy"]) {
      expect(replication.dependsOn).toContain(hardened.named(name).urn);
    }
  });

  test("its role is S3's alone, and may replicate these two buckets with these two keys, nothing else", () => {
    const role = hardened.named("mail-backup-replication-role");
    expect(statements(role.inputs.assumeRolePolicy)).toEqual([{ Effect: "Allow", Principal: { Service: "s3.amazonaws.com" }, Action: "sts:AssumeRole" }]);
    const policy = hardened.named("mail-backup-replication-policy");
    expect(policy.inputs.role).toBe(role.id);
    const source = arnOf(bucket(hardened));
    const destination = arnOf(replica(hardened));
    const replicaKey = one(hardened, S.replication).inputs.rules[0].destination.encryptionConfiguration.replicaKmsKeyId;
    const all = statements(policy.inputs.policy);
    expect(all.map((s) => [s.Sid, s.Effect, list(s.Action).sort(), s.Resource])).toEqual([
      ["ReadSourceConfiguration", "Allow", ["s3:GetReplicationConfiguration", "s3:ListBucket"], source],
      [
        "ReadSourceVersions",
        "Allow",
        ["s3:GetObjectLegalHold", "s3:GetObjectRetention", "s3:GetObjectVersionAcl", "s3:GetObjectVersionForReplication", "s3:GetObjectVersionTagging"],
        `${source}/*`,
      ],
      ["WriteReplica", "Allow", ["s3:ReplicateDelete", "s3:ReplicateObject", "s3:ReplicateTags"], `${destination}/*`],
      ["DecryptSource", "Allow", ["kms:Decrypt"], KEY],
      ["EncryptReplica", "Allow", ["kms:Encrypt", "kms:GenerateDataKey"], replicaKey],
    ]);
    // The keys only through S3 of their own region, for these buckets' objects.
    expect(all[3].Condition).toEqual({ StringEquals: { "kms:ViaService": "s3.us-east-1.amazonaws.com" }, StringLike: { "kms:EncryptionContext:aws:s3:arn": [source, `${source}/*`] } });
    expect(all[4].Condition).toEqual({
      StringEquals: { "kms:ViaService": "s3.eu-central-1.amazonaws.com" },
      StringLike: { "kms:EncryptionContext:aws:s3:arn": [destination, `${destination}/*`] },
    });
    // Replication copies versions; it never needs to delete one.
    expect(allows(all, "s3:DeleteObjectVersion", `${destination}/restic/data/00/x`)).toBe(false);
    expect(allows(all, "s3:DeleteObjectVersion", `${source}/restic/data/00/x`)).toBe(false);
  });

  test("is named by the stack output", () => {
    expect(hardened.outputs.backupReplicaBucketName).toBe(replica(hardened).state.bucket);
    expect(plain.outputs).not.toHaveProperty("backupReplicaBucketName");
  });
});

describe("lifecycle", () => {
  test("old versions move to cheaper classes only when they stay long enough to pay for the move", () => {
    expect(noncurrentTransitions(30, "STANDARD")).toEqual([]);
    expect(noncurrentTransitions(59, "STANDARD")).toEqual([]);
    expect(noncurrentTransitions(60, "STANDARD")).toEqual([{ noncurrentDays: 30, storageClass: "STANDARD_IA" }]);
    expect(noncurrentTransitions(179, "STANDARD")).toEqual([{ noncurrentDays: 30, storageClass: "STANDARD_IA" }]);
    expect(noncurrentTransitions(180, "STANDARD")).toEqual([
      { noncurrentDays: 30, storageClass: "STANDARD_IA" },
      { noncurrentDays: 90, storageClass: "GLACIER_IR" },
    ]);
    // Replicas arrive in Standard-IA already.
    expect(noncurrentTransitions(90, "STANDARD_IA")).toEqual([]);
    expect(noncurrentTransitions(180, "STANDARD_IA")).toEqual([{ noncurrentDays: 90, storageClass: "GLACIER_IR" }]);
    // S3 refuses a noncurrent move to Standard-IA before 30 days; Glacier IR bills 90 days, so
    // a version must still have that long to live when it gets there.
    for (let days = 1; days <= 400; days++) {
      for (const t of noncurrentTransitions(days, "STANDARD")) {
        if (t.storageClass === "STANDARD_IA") expect(t.noncurrentDays).toBeGreaterThanOrEqual(30);
        expect(days - t.noncurrentDays).toBeGreaterThanOrEqual(t.storageClass === "GLACIER_IR" ? 90 : 30);
      }
    }
  });

  test("both buckets expire old versions after the retention and clean up uploads and markers", () => {
    const rule = (run: Run, name: string) => {
      const [r] = run.named(name).inputs.rules;
      expect(r.abortIncompleteMultipartUpload).toEqual({ daysAfterInitiation: 7 });
      expect(r.expiration).toEqual({ expiredObjectDeleteMarker: true });
      return [r.noncurrentVersionExpiration.noncurrentDays, r.noncurrentVersionTransitions];
    };
    expect(rule(plain, "mail-backup-lifecycle")).toEqual([90, noncurrentTransitions(90, "STANDARD")]);
    expect(rule(hardened, "mail-backup-lifecycle")).toEqual([200, noncurrentTransitions(200, "STANDARD")]);
    expect(rule(hardened, "mail-backup-replica-lifecycle")).toEqual([200, noncurrentTransitions(200, "STANDARD_IA")]);
  });
});

describe("the host's access to the backup bucket", () => {
  const backupPolicy = (run: Run) => {
    const policy = run.named("mail-host-backup");
    expect(policy.inputs.role).toBe(run.named("mail-host-role").id);
    return statements(policy.inputs.policy);
  };

  test("is exactly restic's needs under restic/ and reading its stack's host objects, plus a Deny of everything that erases history", () => {
    const b = arnOf(bucket(plain));
    expect(backupPolicy(plain)).toEqual([
      { Sid: "ListResticPrefix", Effect: "Allow", Action: "s3:ListBucket", Resource: b, Condition: { StringLike: { "s3:prefix": ["restic/", "restic/*"] } } },
      { Sid: "LocateBucket", Effect: "Allow", Action: "s3:GetBucketLocation", Resource: b },
      { Sid: "ResticObjects", Effect: "Allow", Action: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], Resource: `${b}/restic/*` },
      { Sid: "ReadHostObjects", Effect: "Allow", Action: "s3:GetObject", Resource: `${b}/host/mailstack/mailstack/test/mail/*` },
      { Sid: "NeverEraseHistory", Effect: "Deny", Action: BACKUP_DENIED_ACTIONS, Resource: [b, `${b}/*`] },
    ]);
    expect([...BACKUP_DENIED_ACTIONS].sort()).toEqual([
      "s3:BypassGovernanceRetention",
      "s3:DeleteBucket",
      "s3:DeleteBucketPolicy",
      "s3:DeleteObjectVersion",
      "s3:PutBucketAcl",
      "s3:PutBucketObjectLockConfiguration",
      "s3:PutBucketOwnershipControls",
      "s3:PutBucketPolicy",
      "s3:PutBucketPublicAccessBlock",
      "s3:PutBucketVersioning",
      "s3:PutEncryptionConfiguration",
      "s3:PutLifecycleConfiguration",
      "s3:PutObjectLegalHold",
      "s3:PutObjectRetention",
      "s3:PutReplicationConfiguration",
    ]);
  });

  test("may use a customer key only through S3 of its region, and no key at all otherwise", () => {
    const kms = (run: Run) => backupPolicy(run).filter((s) => list(s.Action).some((a) => a.startsWith("kms:")));
    expect(kms(plain)).toEqual([]);
    expect(kms(hardened)).toEqual([
      { Sid: "BucketKey", Effect: "Allow", Action: ["kms:Decrypt", "kms:GenerateDataKey"], Resource: KEY, Condition: { StringEquals: { "kms:ViaService": "s3.us-east-1.amazonaws.com" } } },
    ]);
  });

  test("no Allow in any policy of the stack has a wildcard action, nor an S3 or KMS action on resource *", () => {
    for (const [run, count] of [
      // Each with MailMonitoring's two (log streams of its group; metrics in its namespace).
      [plain, 12],
      [hardened, 18],
    ] as const) {
      const all: Statement[] = run.ofType(T.rolePolicy).flatMap((p) => statements(p.inputs.policy));
      expect(all).toHaveLength(count);
      for (const s of all.filter((s) => s.Effect === "Allow")) {
        for (const action of list(s.Action)) {
          expect(action).not.toMatch(/[*?]/);
          if (/^(s3|kms):/.test(action)) expect({ action, resources: list(s.Resource) }).toEqual({ action, resources: expect.not.arrayContaining(["*"]) });
        }
      }
    }
  });

  test("restic can work under its prefix; nothing can delete a version or touch another bucket or prefix", () => {
    for (const run of [plain, hardened]) {
      const all = run.ofType(T.rolePolicy).filter((p) => p.inputs.role === run.named("mail-host-role").id).flatMap((p) => statements(p.inputs.policy));
      const b = arnOf(bucket(run));
      const object = `${b}/restic/data/3f/3f1d`;
      for (const action of ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]) expect({ action, ok: allows(all, action, object) }).toEqual({ action, ok: true });
      expect(allows(all, "s3:ListBucket", b, { "s3:prefix": "restic/" })).toBe(true);
      expect(allows(all, "s3:ListBucket", b, { "s3:prefix": "restic/snapshots/" })).toBe(true);
      expect(allows(all, "s3:GetBucketLocation", b)).toBe(true);
      // Outside the prefix, other buckets, and listing the whole bucket.
      expect(allows(all, "s3:GetObject", `${b}/other/file`)).toBe(false);
      expect(allows(all, "s3:PutObject", `${b}/resticx/file`)).toBe(false);
      expect(allows(all, "s3:ListBucket", b, { "s3:prefix": "" })).toBe(false);
      expect(allows(all, "s3:ListBucket", b)).toBe(false);
      expect(allows(all, "s3:GetObject", "arn:aws:s3:::someone-elses-bucket/restic/config")).toBe(false);
      // History: every denied action stays denied even where an Allow would match it.
      const widened: Statement[] = [...all, { Effect: "Allow", Action: "s3:*", Resource: "*" }];
      for (const action of BACKUP_DENIED_ACTIONS) {
        for (const resource of [b, object]) expect({ action, resource, ok: allows(widened, action, resource) }).toEqual({ action, resource, ok: false });
      }
      expect(allows(all, "s3:DeleteObjectVersion", object)).toBe(false);
      if (run === hardened) expect(allows(all, "s3:GetObject", `${arnOf(replica(run))}/restic/config`)).toBe(false);
    }
  });
});

describe("EBS snapshots", () => {
  test("a daily DLM policy keeps snapshotRetentionDays snapshots of the volumes carrying this stack's tag", () => {
    for (const [run, count] of [
      [plain, 7],
      [hardened, 14],
    ] as const) {
      const policy = one(run, S.dlm);
      const role = run.named("mail-snapshots-role");
      expect(policy.inputs.state).toBe("ENABLED");
      expect(policy.inputs.executionRoleArn).toBe(role.state.arn);
      const details = policy.inputs.policyDetails;
      expect(details.resourceTypes).toEqual(["VOLUME"]);
      expect(details.targetTags).toEqual({ "mailstack:snapshots": "mailstack/test/mail-snapshots" });
      expect(details.schedules).toEqual([
        {
          name: "daily",
          createRule: { interval: 24, intervalUnit: "HOURS", times: "03:00" },
          retainRule: { count },
          copyTags: true,
          tagsToAdd: { "mailstack:snapshot": "daily" },
        },
      ]);
      // The data volume, and nothing else of the stack, carries the target tag.
      const tagged = run.record.resources.filter((r) => r.custom && r.inputs.tags?.["mailstack:snapshots"] !== undefined);
      expect(tagged.map((r) => r.name)).toEqual(["mail-host-data"]);
      expect(tagged[0].inputs.tags["mailstack:snapshots"]).toBe(details.targetTags["mailstack:snapshots"]);
    }
  });

  test("run as a role only DLM can assume, with AWS's policy for DLM, attached before the policy exists", () => {
    const role = plain.named("mail-snapshots-role");
    expect(statements(role.inputs.assumeRolePolicy)).toEqual([{ Effect: "Allow", Principal: { Service: "dlm.amazonaws.com" }, Action: "sts:AssumeRole" }]);
    const attachment = one(plain, S.attachment);
    expect(attachment.inputs).toEqual({ role: role.state.name, policyArn: "arn:aws:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole" });
    expect(one(plain, S.dlm).dependsOn).toContain(attachment.urn);
  });
});

describe("restic repository", () => {
  test("the password is generated once, 48 letters and digits, protected unless the stack is throwaway", () => {
    const password = one(plain, S.password);
    expect(password.inputs).toEqual(expect.objectContaining({ length: 48, special: false }));
    expect(password.state.result).toMatch(/^[A-Za-z0-9]{48}$/);
    expect(password.protect).toBe(true);
    expect(one(throwaway, S.password).protect).toBe(false);
    for (const b of throwaway.ofType(T.bucket)) expect(b.protect).toBe(false);
  });

  test("its location is the restic/ prefix of the bucket at the regional endpoint", () => {
    expect(plain.outputs.resticRepository).toBe(`s3:https://s3.us-east-1.amazonaws.com/${bucket(plain).state.bucket}/restic`);
  });

  test("the host backs up to exactly that location", () => {
    const setting = /MAILSTACK_BACKUP_REPOSITORY=\\"([^"\\]+)\\"/.exec(plain.named("mail-host-bundle").inputs.content);
    expect(setting?.[1]).toBe(plain.outputs.resticRepository);
  });
});

describe("bad backup settings stop the program before any resource", () => {
  test("a replica in the stack's own region, or a key of another region, named by field", async () => {
    const { errors, run } = await runFailing(
      [
        () => new MailStack("mail", stackArgs({ ...fullConfig(), backupReplicaRegion: "us-east-1" })),
        () => new MailStack("mail", stackArgs({ ...fullConfig(), backupKmsKeyArn: KEY.replace("us-east-1", "eu-west-1") })),
      ],
      REGION,
    );
    expect(errors[0]).toBeInstanceOf(MailStackConfigError);
    expect((errors[0] as MailStackConfigError).issues).toEqual([{ path: "backupReplicaRegion", message: expect.stringContaining("is the stack's own region") }]);
    expect((errors[1] as MailStackConfigError).issues).toEqual([{ path: "backupKmsKeyArn", message: expect.stringContaining("use a key in us-east-1") }]);
    expect(run.record.resources.map((r) => r.type)).toEqual([T.stack]);
  });

  test("MailBackup on its own refuses a lock longer than the retention, a bad mode or region", async () => {
    const { errors, run } = await runFailing([
      () => new MailBackup("b1", { retentionDays: 10, objectLock: { mode: "GOVERNANCE", days: 11 } }),
      () => new MailBackup("b2", { objectLock: { mode: "governance" as "GOVERNANCE", days: 1 } }),
      () => new MailBackup("b3", { replicaRegion: "Frankfurt" }),
      () => new MailBackup("b4", { retentionDays: 0 }),
    ]);
    expect(errors.map((e) => (e as Error).message)).toEqual([
      expect.stringContaining("MailBackup b1: objectLock.days: 11 exceeds retentionDays (10)"),
      expect.stringContaining("MailBackup b2: objectLock.mode"),
      expect.stringContaining("MailBackup b3: replicaRegion"),
      expect.stringContaining("MailBackup b4: retentionDays"),
    ]);
    expect(run.record.resources.map((r) => r.type)).toEqual([T.stack]);
  });
});
