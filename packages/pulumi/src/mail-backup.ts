import { AWS_REGION } from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";
import { getPartitionOutput } from "@pulumi/aws/getPartition";
import { getRegionOutput } from "@pulumi/aws/getRegion";
import * as iam from "@pulumi/aws/iam";
import * as kms from "@pulumi/aws/kms";
import * as s3 from "@pulumi/aws/s3";
import { RandomPassword } from "@pulumi/random/randomPassword";

/** The key prefix the host's restic repository lives under; the host may touch nothing else. */
export const RESTIC_PREFIX = "restic";

export interface BackupObjectLock {
  /** GOVERNANCE: principals with s3:BypassGovernanceRetention may still delete; COMPLIANCE: nobody may, not even the root user. */
  mode: "GOVERNANCE" | "COMPLIANCE";
  /** Days each new object version is locked from deletion; at most retentionDays. */
  days: number;
}

export interface MailBackupArgs {
  /**
   * Days a replaced or deleted object version is kept before S3 expires it. Default 90:
   * a host that is compromised or misconfigured cannot erase history younger than this.
   */
  retentionDays?: number;
  /**
   * Customer-managed KMS key (same region as the bucket) for the bucket's default
   * encryption. Default: the AWS-managed `aws/s3` key, which every principal of the account
   * allowed to use S3 may use through S3, and which needs no key policy.
   */
  kmsKeyArn?: pulumi.Input<string>;
  /**
   * Object Lock default retention for every new object version, here and in the replica.
   * Default none. Enabling it on an existing bucket is possible (the bucket is kept), but S3
   * never lets it be turned off again; removing it here only drops the default retention.
   */
  objectLock?: BackupObjectLock;
  /**
   * Region of a replica bucket that S3 copies every object version (and delete marker) to,
   * hardened like this one and encrypted with that region's `aws/s3` key. Default none.
   */
  replicaRegion?: string;
  /**
   * Protect the buckets and the restic password from deletion by Pulumi. Default true:
   * `pulumi destroy` then stops at them instead of taking the backups (or the only key to
   * them) along.
   */
  protect?: boolean;
  /** Tags for the buckets and the replication role. */
  tags?: Record<string, string>;
}

/**
 * The offsite backup bucket: versioned, encrypted with KMS, closed to the public, reachable
 * only over TLS, with old versions moved to cheaper storage and expired after the retention;
 * optionally Object Lock and a replica in another region. Also the password of the restic
 * repository the host keeps under `restic/`, generated once and never changed.
 */
export class MailBackup extends pulumi.ComponentResource {
  readonly bucket: s3.Bucket;
  /** The bucket's name. */
  readonly bucketName: pulumi.Output<string>;
  readonly bucketArn: pulumi.Output<string>;
  /** The replica bucket; undefined without replicaRegion. */
  readonly replica?: s3.Bucket;
  readonly replicaBucketName?: pulumi.Output<string>;
  /** restic's repository location, `s3:https://s3.<region>.amazonaws.com/<bucket>/restic`. Not secret. */
  readonly repositoryUrl: pulumi.Output<string>;
  /** The restic repository password (a Pulumi secret): without it no backup can be read. */
  readonly resticPassword: pulumi.Output<string>;

  constructor(name: string, args: MailBackupArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    const retentionDays = args.retentionDays ?? 90;
    checkArgs(name, args, retentionDays);
    super("mailstack:aws:MailBackup", name, {}, opts);
    const protect = args.protect ?? true;
    const tags = { ...args.tags, "mailstack:role": "backup" };
    const region = getRegionOutput({}, { parent: this }).region;
    const partition = getPartitionOutput({}, { parent: this });

    const primary = hardenedBucket(this, name, { tags, protect, retentionDays, kmsKeyArn: args.kmsKeyArn, objectLock: args.objectLock, storageClass: "STANDARD" });
    this.bucket = primary.bucket;
    this.bucketName = this.bucket.bucket;
    this.bucketArn = this.bucket.arn;

    if (args.replicaRegion !== undefined) {
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
            .all([this.bucket.arn, replica.bucket.arn, sourceKey, replicaKey, region, partition.dnsSuffix])
            .apply(([source, destination, sourceKeyArn, replicaKeyArn, sourceRegion, dnsSuffix]) =>
              JSON.stringify(replicationPolicy({ source, destination, sourceKeyArn, replicaKeyArn, sourceRegion, replicaRegion, dnsSuffix, objectLock: args.objectLock !== undefined })),
            ),
        },
        { parent: this },
      );
      new s3.BucketReplicationConfig(
        `${name}-replication`,
        {
          bucket: this.bucket.id,
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
    this.repositoryUrl = pulumi.interpolate`s3:https://s3.${region}.${partition.dnsSuffix}/${this.bucket.bucket}/${RESTIC_PREFIX}`;
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
  if (!Number.isInteger(retentionDays) || retentionDays < 1) problems.push(`retentionDays: ${retentionDays} is not a whole number of days of at least 1`);
  const lock = args.objectLock;
  if (lock !== undefined) {
    if (lock.mode !== "GOVERNANCE" && lock.mode !== "COMPLIANCE") problems.push(`objectLock.mode: ${JSON.stringify(lock.mode)} must be GOVERNANCE or COMPLIANCE`);
    if (!Number.isInteger(lock.days) || lock.days < 1) problems.push(`objectLock.days: ${lock.days} is not a whole number of days of at least 1`);
    else if (lock.days > retentionDays) problems.push(`objectLock.days: ${lock.days} exceeds retentionDays (${retentionDays}); locked versions would outlive the retention`);
  }
  if (args.replicaRegion !== undefined && !AWS_REGION.test(args.replicaRegion)) {
    problems.push(`replicaRegion: ${JSON.stringify(args.replicaRegion)} is not an AWS region; write it like eu-central-1`);
  }
  if (problems.length > 0) throw new Error(`MailBackup ${name}: ${problems.join("; ")}`);
}

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
          Statement: [
            {
              Sid: "DenyInsecureTransport",
              Effect: "Deny",
              Principal: "*",
              Action: "s3:*",
              Resource: [arn, `${arn}/*`],
              Condition: { Bool: { "aws:SecureTransport": "false" } },
            },
          ],
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

/**
 * Where old versions go while they wait for expiry. Each class bills a minimum stay
 * (Standard-IA 30 days, Glacier Instant Retrieval 90), so a move pays off only when a version
 * stays at least that long in the new class; both keep millisecond reads, so a restore from
 * an old version needs no extra step.
 */
export function noncurrentTransitions(retentionDays: number, storageClass: "STANDARD" | "STANDARD_IA"): { noncurrentDays: number; storageClass: string }[] {
  const transitions: { noncurrentDays: number; storageClass: string }[] = [];
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
