// An existing backup bucket brought in by name, ARN or output: no bucket resource of any kind,
// the host's role and restic repository inside that bucket, conflicting settings refused.
import { BACKUP_DENIED_ACTIONS, MailBackup, MailStack, MailStackConfigError } from "@mailstack/pulumi";
import * as pulumi from "@pulumi/pulumi";
import { fullConfig } from "../support/fixtures";
import { type Run, runFailing, runProgram } from "../support/harness";
import { stackArgs } from "./args";
import { allows, list, statements, T } from "./helpers";

const NAME = "acme-mail-backups";
const ARN = `arn:aws:s3:::${NAME}`;
const KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const REPOSITORY = `s3:https://s3.us-east-1.amazonaws.com/${NAME}/restic`;

const stackOutputs = (mail: MailStack) => ({
  backupBucketName: mail.backupBucketName,
  resticRepository: mail.resticRepository,
  bucketArn: mail.backup.bucketArn,
  hasBucket: mail.backup.bucket !== undefined,
});

let byName: Run;
let byArn: Run;
let byOutput: Run;
let withKey: Run;
let created: Run; // no backupBucket: the bucket is made, as before

beforeAll(async () => {
  byName = await runProgram(() => stackOutputs(new MailStack("mail", stackArgs(fullConfig(), { backupBucket: NAME }))));
  byArn = await runProgram(() => stackOutputs(new MailStack("mail", stackArgs(fullConfig(), { backupBucket: ARN }))));
  // As a bucket made elsewhere in the same program would give it.
  byOutput = await runProgram(() => stackOutputs(new MailStack("mail", stackArgs(fullConfig(), { backupBucket: pulumi.output(NAME) }))));
  withKey = await runProgram(() => stackOutputs(new MailStack("mail", stackArgs(fullConfig(), { backupBucket: NAME, backupKmsKeyArn: KEY }))));
  created = await runProgram(() => stackOutputs(new MailStack("mail", stackArgs(fullConfig()))));
});

const existing = () => [
  ["name", byName],
  ["ARN", byArn],
  ["output", byOutput],
  ["name and customer key", withKey],
] as const;

/** A setting of the host's settings file, as the host bundle carries it. */
const hostSetting = (run: Run, key: string) => {
  const files = (JSON.parse(run.named("mail-host-bundle").inputs.content) as { files: { path: string; content: string }[] }).files;
  return new RegExp(`^${key}="([^"]+)"$`, "m").exec(files.find((f) => f.path === "/etc/default/mailstack")!.content)?.[1];
};

test("no bucket, nor any of its settings, policy or replica, is created", () => {
  for (const [given, run] of existing()) {
    // Only the host's objects, put into the given bucket.
    const objects = run.record.resources.filter((r) => r.type.startsWith("aws:s3/"));
    expect({ given, s3: objects.map((r) => r.name).sort() }).toEqual({ given, s3: ["mail-host-bundle", "mail-parameters-runtime"] });
    for (const o of objects) expect({ given, bucket: o.inputs.bucket }).toEqual({ given, bucket: NAME });
    expect({ given, backup: run.record.resources.filter((r) => r.name.startsWith("mail-backup")).map((r) => r.name).sort() }).toEqual({
      given,
      backup: ["mail-backup", "mail-backup-restic-password"],
    });
    expect(run.outputs.hasBucket).toBe(false);
  }
});

test("the restic password is still generated and protected", () => {
  for (const [, run] of existing()) expect(run.named("mail-backup-restic-password").protect).toBe(true);
});

test("the stack names the existing bucket, and its restic repository lies in it", () => {
  for (const [given, run] of existing()) {
    expect({ given, outputs: { ...run.outputs, hasBucket: undefined } }).toEqual({
      given,
      outputs: { backupBucketName: NAME, resticRepository: REPOSITORY, bucketArn: ARN, hasBucket: undefined },
    });
  }
});

test("the host backs up to that repository", () => {
  for (const [given, run] of existing()) expect({ given, repository: hostSetting(run, "MAILSTACK_BACKUP_REPOSITORY") }).toEqual({ given, repository: REPOSITORY });
});

test("the host's role gets restic/ and reading its stack's host objects in that bucket and nothing else, and may not change its rules", () => {
  for (const [given, run] of existing()) {
    const all = statements(run.named("mail-host-backup").inputs.policy);
    const s3 = all.filter((s) => list(s.Action).some((a) => a.startsWith("s3:")));
    expect({ given, resources: [...new Set(s3.flatMap((s) => list(s.Resource)))].sort() }).toEqual({ given, resources: [ARN, `${ARN}/*`, `${ARN}/restic/*`, `${ARN}/host/mailstack/mailstack/test/mail/*`].sort() });
    expect(allows(all, "s3:PutObject", `${ARN}/restic/data/00/x`)).toBe(true);
    expect(allows(all, "s3:GetObject", `${ARN}/host/mailstack/mailstack/test/mail/bundles/x.json`)).toBe(true);
    expect(allows(all, "s3:PutObject", `${ARN}/host/mailstack/mailstack/test/mail/runtime.json`)).toBe(false);
    // Another stack's objects in a shared bucket stay out of reach.
    expect(allows(all, "s3:GetObject", `${ARN}/host/mailstack/other/mail/runtime.json`)).toBe(false);
    expect(allows(all, "s3:GetObject", `${ARN}/other/x`)).toBe(false);
    expect(allows(all, "s3:ListBucket", ARN, { "s3:prefix": "restic/" })).toBe(true);
    expect(allows(all, "s3:ListBucket", ARN, { "s3:prefix": "" })).toBe(false);
    for (const action of BACKUP_DENIED_ACTIONS) expect({ action, allowed: allows([...all, { Effect: "Allow", Action: "s3:*", Resource: "*" }], action, ARN) }).toEqual({ action, allowed: false });
  }
});

test("a customer key of the existing bucket is granted to the host through S3 only", () => {
  const kms = (run: Run) => statements(run.named("mail-host-backup").inputs.policy).filter((s) => list(s.Action).some((a) => a.startsWith("kms:")));
  expect(kms(byName)).toEqual([]);
  expect(kms(withKey)).toEqual([
    { Sid: "BucketKey", Effect: "Allow", Action: ["kms:Decrypt", "kms:GenerateDataKey"], Resource: KEY, Condition: { StringEquals: { "kms:ViaService": "s3.us-east-1.amazonaws.com" } } },
  ]);
});

test("without an existing bucket, the bucket and its settings are created as before", () => {
  const bucket = created.named("mail-backup-bucket");
  expect(created.record.resources.filter((r) => r.type.startsWith("aws:s3/")).map((r) => r.name).sort()).toEqual([
    "mail-backup-bucket",
    "mail-backup-encryption",
    "mail-backup-lifecycle",
    "mail-backup-ownership",
    "mail-backup-public-access",
    "mail-backup-tls-only",
    "mail-backup-versioning",
    "mail-host-bundle",
    "mail-parameters-runtime",
  ]);
  expect(created.outputs).toEqual({
    backupBucketName: bucket.state.bucket,
    resticRepository: `s3:https://s3.us-east-1.amazonaws.com/${bucket.state.bucket}/restic`,
    bucketArn: bucket.state.arn,
    hasBucket: true,
  });
  expect(hostSetting(created, "MAILSTACK_BACKUP_REPOSITORY")).toBe(created.outputs.resticRepository);
});

describe("settings an existing bucket cannot take stop the program before any resource", () => {
  test("MailStack names each field: a replica, Object Lock, a retention other than the default, a malformed bucket", async () => {
    const { errors, run } = await runFailing([
      () =>
        new MailStack(
          "mail",
          stackArgs(
            { ...fullConfig(), backupReplicaRegion: "eu-central-1", backupObjectLock: { mode: "GOVERNANCE", days: 30 }, backupRetentionDays: 200 },
            { backupBucket: NAME },
          ),
        ),
      () => new MailStack("mail", stackArgs(fullConfig(), { backupBucket: "Acme_Backups" })),
      () => new MailStack("mail", stackArgs(fullConfig(), { backupBucket: `${ARN}/restic` })),
      // The default, which the reference program's Pulumi.yaml always sets, is no conflict.
      () => new MailStack("mail", stackArgs({ ...fullConfig(), backupRetentionDays: 90 }, { backupBucket: NAME })),
    ]);
    expect(errors[0]).toBeInstanceOf(MailStackConfigError);
    const issues = (errors[0] as MailStackConfigError).issues;
    expect(issues.map((i) => i.path)).toEqual(["backupRetentionDays", "backupObjectLock", "backupReplicaRegion"]);
    for (const issue of issues) expect(issue.message).toMatch(/^sets .* of a backup bucket mailstack creates, but backupBucket is an existing bucket .*; set that on the bucket yourself, or leave out one of the two$/);
    expect((errors[0] as Error).message).toContain("backupReplicaRegion: sets the replica of a backup bucket mailstack creates");
    expect((errors[1] as MailStackConfigError).issues).toEqual([{ path: "backupBucket", message: '"Acme_Backups" is not an S3 bucket name or ARN; write it like my-mail-backups or arn:aws:s3:::my-mail-backups' }]);
    expect((errors[2] as MailStackConfigError).issues).toEqual([{ path: "backupBucket", message: expect.stringContaining("is not an S3 bucket name or ARN") }]);
    expect(errors[3]).toBeUndefined();
    // Only the last attempt, which is valid, registered resources.
    expect(run.ofType(T.mailStack)).toHaveLength(1);
  });

  test("MailBackup on its own refuses every setting of a bucket it would create, and a malformed bucket", async () => {
    const { errors, run } = await runFailing([
      () => new MailBackup("b1", { bucket: { existing: NAME }, retentionDays: 30, kmsKeyArn: KEY, objectLock: { mode: "COMPLIANCE", days: 1 }, replicaRegion: "eu-central-1" }),
      () => new MailBackup("b2", { bucket: { existing: "x" } }),
    ]);
    const message = (errors[0] as Error).message;
    expect(message.startsWith("MailBackup b1: ")).toBe(true);
    for (const field of ["retentionDays", "kmsKeyArn", "objectLock", "replicaRegion"]) expect(message).toContain(`${field}: sets `);
    expect(message).toContain("but bucket.existing is a bucket it leaves alone");
    expect((errors[1] as Error).message).toBe('MailBackup b2: bucket.existing: "x" is not an S3 bucket name or ARN; write it like my-mail-backups or arn:aws:s3:::my-mail-backups');
    for (const error of errors) expect(pulumi.ResourceError.isInstance(error)).toBe(true);
    expect(run.record.resources.map((r) => r.type)).toEqual([T.stack]);
  });
});
