import * as pulumi from "@pulumi/pulumi";
import * as s3 from "@pulumi/aws/s3";

export interface MailBackupArgs {
  /**
   * Days a replaced or deleted object version is kept before S3 expires it. Default 90:
   * a host that is compromised or misconfigured cannot erase history younger than this.
   */
  retentionDays?: number;
  /**
   * Protect the bucket from deletion by Pulumi. Default true: `pulumi destroy` then stops
   * at the bucket instead of taking the backups with it.
   */
  protect?: boolean;
  /** Tags for the bucket. */
  tags?: Record<string, string>;
}

/**
 * The offsite backup bucket: versioned, encrypted with KMS, closed to the public, reachable
 * only over TLS, with old versions moved to cheaper storage and expired after the retention.
 */
export class MailBackup extends pulumi.ComponentResource {
  readonly bucket: s3.Bucket;
  /** The bucket's name. */
  readonly bucketName: pulumi.Output<string>;
  readonly bucketArn: pulumi.Output<string>;

  constructor(name: string, args: MailBackupArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super("mailstack:aws:MailBackup", name, {}, opts);
    const retentionDays = args.retentionDays ?? 90;
    const parent = { parent: this };
    this.bucket = new s3.Bucket(
      `${name}-bucket`,
      { forceDestroy: false, tags: { ...args.tags, "mailstack:role": "backup" } },
      { parent: this, protect: args.protect ?? true },
    );
    const bucket = this.bucket.id;
    new s3.BucketOwnershipControls(`${name}-ownership`, { bucket, rule: { objectOwnership: "BucketOwnerEnforced" } }, parent);
    const publicAccess = new s3.BucketPublicAccessBlock(
      `${name}-public-access`,
      { bucket, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true },
      parent,
    );
    new s3.BucketVersioning(`${name}-versioning`, { bucket, versioningConfiguration: { status: "Enabled" } }, parent);
    new s3.BucketServerSideEncryptionConfiguration(
      `${name}-encryption`,
      { bucket, rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms" }, bucketKeyEnabled: true }] },
      parent,
    );
    new s3.BucketPolicy(
      `${name}-tls-only`,
      {
        bucket,
        policy: this.bucket.arn.apply((arn) =>
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
      { parent: this, dependsOn: [publicAccess] },
    );
    // Standard-IA bills at least 30 days, so moving versions kept less long would cost more.
    const transitions = retentionDays > 30 ? [{ noncurrentDays: 30, storageClass: "STANDARD_IA" }] : [];
    new s3.BucketLifecycleConfiguration(
      `${name}-lifecycle`,
      {
        bucket,
        rules: [
          {
            id: "old-versions",
            status: "Enabled",
            filter: {},
            noncurrentVersionTransitions: transitions,
            noncurrentVersionExpiration: { noncurrentDays: retentionDays },
            abortIncompleteMultipartUpload: { daysAfterInitiation: 7 },
            expiration: { expiredObjectDeleteMarker: true },
          },
        ],
      },
      parent,
    );
    this.bucketName = this.bucket.bucket;
    this.bucketArn = this.bucket.arn;
    this.registerOutputs({ bucketName: this.bucketName, bucketArn: this.bucketArn });
  }
}
