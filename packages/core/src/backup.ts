/** Key prefix of the host's restic repository in the backup bucket; the host's role may touch nothing else there. */
export const RESTIC_PREFIX = "restic";

/**
 * Where restic finds the host's repository: the bucket on the regional S3 endpoint of the
 * region's partition (`amazonaws.com`, `amazonaws.com.cn` in China), so restic needs no
 * GetBucketLocation call and no endpoint guess.
 */
export function resticRepositoryUrl(bucket: string, region: string, dnsSuffix: string): string {
  return `s3:https://s3.${region}.${dnsSuffix}/${bucket}/${RESTIC_PREFIX}`;
}

const BUCKET_NAME = /^(?!\d+\.\d+\.\d+\.\d+$)(?!.*\.\.)(?!.*\.-)(?!.*-\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const BUCKET_ARN = /^arn:aws(?:-[a-z]+)*:s3:::([^/]*)$/;

/** What is wrong with an existing bucket given by name or ARN; undefined if nothing is. */
export function bucketProblem(value: string): string | undefined {
  const name = BUCKET_ARN.exec(value)?.[1] ?? value;
  if (BUCKET_NAME.test(name)) return undefined;
  return `${JSON.stringify(value)} is not an S3 bucket name or ARN; write it like my-mail-backups or arn:aws:s3:::my-mail-backups`;
}

/** Name and ARN of a bucket given by either (checked by bucketProblem), in `partition`. */
export function existingBucket(
  value: string,
  partition: string,
): {
  /** Bucket name, e.g. `my-mail-backups`. */
  name: string;
  /** Bucket ARN, `arn:<partition>:s3:::<name>`. */
  arn: string;
} {
  const name = BUCKET_ARN.exec(value)?.[1];
  return name !== undefined ? { name, arn: value } : { name: value, arn: `arn:${partition}:s3:::${value}` };
}

/**
 * The backup settings that configure a bucket mailstack creates, by config field, with what
 * each sets: an existing bucket is left as it is, so none of them applies to it (the key only
 * as the bucket's encryption; the host's role may still be given it).
 */
export const CREATED_BUCKET_SETTINGS = {
  /** The lifecycle rule that expires noncurrent object versions. */
  backupRetentionDays: "the lifecycle that expires old versions",
  /** The bucket's default encryption (SSE-KMS with that key). */
  backupKmsKeyArn: "the default encryption",
  /** Object Lock and its default retention. */
  backupObjectLock: "Object Lock",
  /** Replication to a second bucket in another region. */
  backupReplicaRegion: "the replica",
} as const;
