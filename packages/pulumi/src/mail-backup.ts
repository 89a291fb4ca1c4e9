import { AWS_REGION, BACKUP_RETENTION_DAYS, bucketProblem, CREATED_BUCKET_SETTINGS, existingBucket, OBJECT_LOCK_DAYS, RESTIC_PREFIX, resticRepositoryUrl } from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";
import { getPartitionOutput } from "@pulumi/aws/getPartition";
import { getRegionOutput } from "@pulumi/aws/getRegion";
import * as iam from "@pulumi/aws/iam";
import * as kms from "@pulumi/aws/kms";
import * as s3 from "@pulumi/aws/s3";
import { RandomPassword } from "@pulumi/random/randomPassword";

export { RESTIC_PREFIX };

/** Object Lock's default retention of every new object version in the backup buckets. */
export interface BackupObjectLock {
  /** GOVERNANCE: principals with s3:BypassGovernanceRetention may still delete; COMPLIANCE: nobody may, not even the root user. */
  readonly mode: "GOVERNANCE" | "COMPLIANCE";
  /** Days each new object version is locked from deletion; at most retentionDays. */
  readonly days: number;
}

/** Arguments of {@link MailBackup}; every one is optional. */
export interface MailBackupArgs {
  /**
   * The bucket the backups go to. Default: a new one, made as described above.
   *
   * `{ existing: "my-mail-backups" }` (a name, or an ARN such as
   * `arn:aws:s3:::my-mail-backups`; either may be an output): a bucket made and managed
   * elsewhere, in the stack's region. MailBackup then creates no bucket and sets none of its
   * rules: versioning, encryption, lifecycle, public-access block, TLS-only policy, Object Lock
   * and replica are the operator's to set (versioning above all: without it, restic's prune
   * deletes old data for good), and `retentionDays`, `kmsKeyArn`, `objectLock` and
   * `replicaRegion`, which configure a bucket MailBackup creates, are refused. The restic
   * password is generated as always, and MailHost's role still gets only `restic/` in that
   * bucket and is denied every change to the bucket's rules.
   */
  readonly bucket?: {
    /** The existing bucket's name or ARN. */
    readonly existing: pulumi.Input<string>;
  };
  /**
   * Days a replaced or deleted object version is kept before S3 expires it. Default 90:
   * a host that is compromised or misconfigured cannot erase history younger than this.
   */
  readonly retentionDays?: number;
  /**
   * Customer-managed KMS key (same region as the bucket) for the bucket's default
   * encryption. Default: the AWS-managed `aws/s3` key, which every principal of the account
   * allowed to use S3 may use through S3, and which needs no key policy.
   */
  readonly kmsKeyArn?: pulumi.Input<string>;
  /**
   * Object Lock default retention for every new object version, here and in the replica.
   * Default none. Enabling it on an existing bucket is possible (the bucket is kept), but S3
   * never lets it be turned off again; removing it here only drops the default retention.
   */
  readonly objectLock?: BackupObjectLock;
  /**
   * Region of a replica bucket that S3 copies every object version (and delete marker) to,
   * hardened like this one and encrypted with that region's `aws/s3` key. Default none.
   */
  readonly replicaRegion?: string;
  /**
   * Protect the buckets and the restic password from deletion by Pulumi. Default true:
   * `pulumi destroy` then stops at them instead of taking the backups (or the only key to
   * them) along.
   */
  readonly protect?: boolean;
  /** Tags for the buckets and the replication role. Default none. */
  readonly tags?: Readonly<Record<string, string>>;
}

/**
 * The offsite backup bucket: versioned, encrypted with KMS, closed to the public, reachable
 * only over TLS, with old versions moved to cheaper storage and expired after the retention;
 * optionally Object Lock and a replica in another region. Also the password of the restic
 * repository the host keeps under `restic/`, generated once and never changed.
 */
export class MailBackup extends pulumi.ComponentResource {
  /** The bucket MailBackup created; undefined with `bucket.existing`. */
  readonly bucket?: s3.Bucket;
  /** The backup bucket's name: the one created, or the existing one's. */
  readonly bucketName: pulumi.Output<string>;
  /** The backup bucket's ARN, `arn:<partition>:s3:::<name>`: the one created, or the existing one's. */
  readonly bucketArn: pulumi.Output<string>;
  /** The replica bucket; undefined without replicaRegion. */
  readonly replica?: s3.Bucket;
  /** The replica bucket's name; undefined without replicaRegion. */
  readonly replicaBucketName?: pulumi.Output<string>;
  /** restic's repository location, `s3:https://s3.<region>.<partition's DNS suffix>/<bucket>/restic`. Not secret. */
  readonly repositoryUrl: pulumi.Output<string>;
  /** The restic repository password (a Pulumi secret): without it no backup can be read. */
  readonly resticPassword: pulumi.Output<string>;

  constructor(name: string, args: MailBackupArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    const retentionDays = args.retentionDays ?? BACKUP_RETENTION_DAYS.default;
    checkArgs(name, args, retentionDays);
    super("mailstack:aws:MailBackup", name, {}, opts);
    const protect = args.protect ?? true;
    const tags = { ...args.tags, "mailstack:role": "backup" };
    const region = getRegionOutput({}, { parent: this }).region;
    const partition = getPartitionOutput({}, { parent: this });

    const existing = args.bucket?.existing;
    const primary = existing === undefined ? hardenedBucket(this, name, { tags, protect, retentionDays, kmsKeyArn: args.kmsKeyArn, objectLock: args.objectLock, storageClass: "STANDARD" }) : undefined;
    if (primary !== undefined) {
      this.bucket = primary.bucket;
      this.bucketName = primary.bucket.bucket;
      this.bucketArn = primary.bucket.arn;
    } else {
      const bucket = pulumi.all([existing, partition.partition]).apply(([value, partitionName]) => {
        const problem = bucketProblem(value as string);
        // A plain value was checked before any resource; this is an output's.
        if (problem !== undefined) throw new pulumi.ResourceError(`MailBackup ${name}: bucket.existing: ${problem}`, this);
        return existingBucket(value as string, partitionName);
      });
      this.bucketName = bucket.name;
      this.bucketArn = bucket.arn;
    }

    // checkArgs refuses a replica of an existing bucket.
    if (primary !== undefined && args.replicaRegion !== undefined) {
      const replicaRegion = args.replicaRegion;
      // Replicas are written as Standard-IA: they are read only when the primary is gone.
      const replica = hardenedBucket(this, `${name}-replica`, { tags, protect, retentionDays, objectLock: args.objectLock, storageClass: "STANDARD_IA", region: replicaRegion });
      this.replica = replica.bucket;
      this.replicaBucketName = replica.bucket.bucket;
      // S3 replicates SSE-KMS objects only when told which destination key to use.
      const replicaKey = kms.getKeyOutput({ keyId: "alias/aws/s3", region: replicaRegion }, { parent: this }).arn;
      const sourceKey = args.kmsKeyArn !== undefined ? pulumi.output(args.kmsKeyArn) : kms.getKeyOutput({ keyId: "alias/aws/s3" }, { parent: this }).arn;
      const role = new iam.Role(
        `${name}-replication-role`,
        {
          description: "mailstack backup replication",
          assumeRolePolicy: JSON.stringify({
            Version: "2012-10-17",
            Statement: [{ Effect: "Allow", Principal: { Service: "s3.amazonaws.com" }, Action: "sts:AssumeRole" }],
          }),
          tags: args.tags,
        },
        { parent: this },
      );
      const policy = new iam.RolePolicy(
        `${name}-replication-policy`,
        {
          role: role.id,
          policy: pulumi
            .all([primary.bucket.arn, replica.bucket.arn, sourceKey, replicaKey, region, partition.dnsSuffix])
            .apply(([source, destination, sourceKeyArn, replicaKeyArn, sourceRegion, dnsSuffix]) =>
              JSON.stringify(replicationPolicy({ source, destination, sourceKeyArn, replicaKeyArn, sourceRegion, replicaRegion, dnsSuffix, objectLock: args.objectLock !== undefined })),
            ),
        },
        { parent: this },
      );
      new s3.BucketReplicationConfig(
        `${name}-replication`,
        {
          bucket: primary.bucket.id,
          role: role.arn,
          rules: [
            {
              id: "offsite",
              status: "Enabled",
              filter: { prefix: "" },
              // A delete marker makes the replica's copy noncurrent too, so its lifecycle can
              // expire it; deleting a version is never replicated.
              deleteMarkerReplication: { status: "Enabled" },
              sourceSelectionCriteria: { sseKmsEncryptedObjects: { status: "Enabled" } },
              destination: { bucket: replica.bucket.arn, storageClass: "STANDARD_IA", encryptionConfiguration: { replicaKmsKeyId: replicaKey } },
            },
          ],
        },
        // S3 refuses replication until both buckets are versioned, and fails it without the role's grants.
        { parent: this, dependsOn: [primary.versioning, replica.versioning, policy] },
      );
    }

    const password = new RandomPassword(
      `${name}-restic-password`,
      // Letters and digits only (286 bits): the password file is read verbatim, no quoting to get wrong.
      { length: 48, special: false },
      // A new password would leave every existing backup unreadable.
      { parent: this, protect },
    );
    this.resticPassword = pulumi.secret(password.result);
    this.repositoryUrl = pulumi.all([this.bucketName, region, partition.dnsSuffix]).apply(([bucket, region, dnsSuffix]) => resticRepositoryUrl(bucket, region, dnsSuffix));
    this.registerOutputs({
      bucketName: this.bucketName,
      bucketArn: this.bucketArn,
      replicaBucketName: this.replicaBucketName,
      repositoryUrl: this.repositoryUrl,
      resticPassword: this.resticPassword,
    });
  }
}

/** Fails before any resource exists when an arg would only fail at AWS, mid-deployment. */
function checkArgs(name: string, args: MailBackupArgs, retentionDays: number): void {
  const problems: string[] = [];
  const { min, max } = BACKUP_RETENTION_DAYS;
  if (!Number.isInteger(retentionDays) || retentionDays < min || retentionDays > max) problems.push(`retentionDays: ${retentionDays} is not a whole number of days from ${min} to ${max}`);
  const lock = args.objectLock;
  if (lock !== undefined) {
    if (lock.mode !== "GOVERNANCE" && lock.mode !== "COMPLIANCE") problems.push(`objectLock.mode: ${JSON.stringify(lock.mode)} must be GOVERNANCE or COMPLIANCE`);
    if (!Number.isInteger(lock.days) || lock.days < OBJECT_LOCK_DAYS.min || lock.days > OBJECT_LOCK_DAYS.max) {
      problems.push(`objectLock.days: ${lock.days} is not a whole number of days from ${OBJECT_LOCK_DAYS.min} to ${OBJECT_LOCK_DAYS.max}`);
    }
    else if (lock.days > retentionDays) problems.push(`objectLock.days: ${lock.days} exceeds retentionDays (${retentionDays}); locked versions would outlive the retention`);
  }
  if (args.replicaRegion !== undefined && !AWS_REGION.test(args.replicaRegion)) {
    problems.push(`replicaRegion: ${JSON.stringify(args.replicaRegion)} is not an AWS region; write it like eu-central-1`);
  }
  if (args.bucket !== undefined) {
    const existing = args.bucket.existing;
    const problem = typeof existing === "string" ? bucketProblem(existing) : undefined;
    if (problem !== undefined) problems.push(`bucket.existing: ${problem}`);
    for (const [field, setting] of Object.entries(CREATED_BUCKET_ARGS)) {
      if (args[field as keyof typeof CREATED_BUCKET_ARGS] !== undefined) {
        problems.push(`${field}: sets ${CREATED_BUCKET_SETTINGS[setting]} of a bucket MailBackup creates, but bucket.existing is a bucket it leaves alone; set that on the bucket yourself, or leave out one of the two`);
      }
    }
  }
  // Before super(): a refused component is not registered at all; the message names it.
  if (problems.length > 0) throw new pulumi.ResourceError(`MailBackup ${name}: ${problems.join("; ")}`, undefined);
}

/** MailBackup's settings of a bucket it creates, by the config field each stands for. */
const CREATED_BUCKET_ARGS = {
  retentionDays: "backupRetentionDays",
  kmsKeyArn: "backupKmsKeyArn",
  objectLock: "backupObjectLock",
  replicaRegion: "backupReplicaRegion",
} as const satisfies Partial<Record<keyof MailBackupArgs, keyof typeof CREATED_BUCKET_SETTINGS>>;

interface BucketOptions {
  tags: Record<string, string>;
  protect: boolean;
  retentionDays: number;
  kmsKeyArn?: pulumi.Input<string>;
  objectLock?: BackupObjectLock;
  /** The class new objects arrive in; decides which transitions pay off. */
  storageClass: "STANDARD" | "STANDARD_IA";
  /** Default: the provider's region. */
  region?: string;
}

/** A bucket with every hardening the backups need, its children named after `name`. */
function hardenedBucket(parent: pulumi.Resource, name: string, options: BucketOptions): { bucket: s3.Bucket; versioning: s3.BucketVersioning } {
  const { region } = options;
  const opts = { parent };
  const bucket = new s3.Bucket(`${name}-bucket`, { forceDestroy: false, region, tags: options.tags }, { parent, protect: options.protect });
  const id = bucket.id;
  new s3.BucketOwnershipControls(`${name}-ownership`, { bucket: id, region, rule: { objectOwnership: "BucketOwnerEnforced" } }, opts);
  const publicAccess = new s3.BucketPublicAccessBlock(
    `${name}-public-access`,
    { bucket: id, region, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true },
    opts,
  );
  const versioning = new s3.BucketVersioning(`${name}-versioning`, { bucket: id, region, versioningConfiguration: { status: "Enabled" } }, opts);
  new s3.BucketServerSideEncryptionConfiguration(
    `${name}-encryption`,
    {
      bucket: id,
      region,
      rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms", kmsMasterKeyId: options.kmsKeyArn }, bucketKeyEnabled: true }],
    },
    opts,
  );
  new s3.BucketPolicy(
    `${name}-tls-only`,
    {
      bucket: id,
      region,
      policy: bucket.arn.apply((arn) =>
        JSON.stringify({
          Version: "2012-10-17",
          Statement: [denyInsecureTransport(arn)],
        }),
      ),
    },
    // S3 refuses a policy while the public-access block is still being applied.
    { parent, dependsOn: [publicAccess] },
  );
  new s3.BucketLifecycleConfiguration(
    `${name}-lifecycle`,
    {
      bucket: id,
      region,
      rules: [
        {
          id: "old-versions",
          status: "Enabled",
          filter: {},
          noncurrentVersionTransitions: noncurrentTransitions(options.retentionDays, options.storageClass),
          noncurrentVersionExpiration: { noncurrentDays: options.retentionDays },
          abortIncompleteMultipartUpload: { daysAfterInitiation: 7 },
          expiration: { expiredObjectDeleteMarker: true },
        },
      ],
    },
    opts,
  );
  if (options.objectLock !== undefined) {
    new s3.BucketObjectLockConfiguration(
      `${name}-object-lock`,
      { bucket: id, region, objectLockEnabled: "Enabled", rule: { defaultRetention: { mode: options.objectLock.mode, days: options.objectLock.days } } },
      // Object Lock can be enabled on an existing bucket only once it is versioned.
      { parent, dependsOn: [versioning] },
    );
  }
  return { bucket, versioning };
}

/** One move of old versions to another storage class, as the lifecycle rule takes it. */
export interface NoncurrentTransition {
  /** Days after a version stopped being current. */
  noncurrentDays: number;
  /** The S3 storage class it moves to, e.g. `STANDARD_IA` or `GLACIER_IR`. */
  storageClass: string;
}

/** A bucket policy statement that refuses every request to the bucket not made over TLS. */
export function denyInsecureTransport(bucketArn: string) {
  return {
    Sid: "DenyInsecureTransport",
    Effect: "Deny",
    Principal: "*",
    Action: "s3:*",
    Resource: [bucketArn, `${bucketArn}/*`],
    Condition: { Bool: { "aws:SecureTransport": "false" } },
  };
}

/**
 * Where old versions go while they wait for expiry. Each class bills a minimum stay
 * (Standard-IA 30 days, Glacier Instant Retrieval 90), so a move pays off only when a version
 * stays at least that long in the new class; both keep millisecond reads, so a restore from
 * an old version needs no extra step.
 */
export function noncurrentTransitions(retentionDays: number, storageClass: "STANDARD" | "STANDARD_IA"): NoncurrentTransition[] {
  const transitions: NoncurrentTransition[] = [];
  if (storageClass === "STANDARD" && retentionDays >= 60) transitions.push({ noncurrentDays: 30, storageClass: "STANDARD_IA" });
  if (retentionDays >= 180) transitions.push({ noncurrentDays: 90, storageClass: "GLACIER_IR" });
  return transitions;
}

interface ReplicationPolicyInput {
  source: string;
  destination: string;
  sourceKeyArn: string;
  replicaKeyArn: string;
  sourceRegion: string;
  replicaRegion: string;
  dnsSuffix: string;
  objectLock: boolean;
}

/** What S3 replication needs, on these two buckets and keys only. */
function replicationPolicy(p: ReplicationPolicyInput) {
  // With bucket keys the encryption context is the bucket's ARN, otherwise the object's.
  const context = (bucket: string) => ({ "kms:EncryptionContext:aws:s3:arn": [bucket, `${bucket}/*`] });
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "ReadSourceConfiguration", Effect: "Allow", Action: ["s3:GetReplicationConfiguration", "s3:ListBucket"], Resource: p.source },
      {
        Sid: "ReadSourceVersions",
        Effect: "Allow",
        Action: [
          "s3:GetObjectVersionForReplication",
          "s3:GetObjectVersionAcl",
          "s3:GetObjectVersionTagging",
          // Retention travels with each version to the replica's Object Lock.
          ...(p.objectLock ? ["s3:GetObjectRetention", "s3:GetObjectLegalHold"] : []),
        ],
        Resource: `${p.source}/*`,
      },
      { Sid: "WriteReplica", Effect: "Allow", Action: ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"], Resource: `${p.destination}/*` },
      {
        Sid: "DecryptSource",
        Effect: "Allow",
        Action: ["kms:Decrypt"],
        Resource: p.sourceKeyArn,
        Condition: { StringEquals: { "kms:ViaService": `s3.${p.sourceRegion}.${p.dnsSuffix}` }, StringLike: context(p.source) },
      },
      {
        Sid: "EncryptReplica",
        Effect: "Allow",
        Action: ["kms:Encrypt", "kms:GenerateDataKey"],
        Resource: p.replicaKeyArn,
        Condition: { StringEquals: { "kms:ViaService": `s3.${p.replicaRegion}.${p.dnsSuffix}` }, StringLike: context(p.destination) },
      },
    ],
  };
}
