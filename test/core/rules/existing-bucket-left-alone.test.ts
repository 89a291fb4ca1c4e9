import { existingBucketLeftAlone } from "../../../packages/core/src/config/rules/existing-bucket-left-alone";
import { lines } from "./check";

test("a new bucket takes every setting, and an existing one the default retention and a key", () => {
  expect(lines(existingBucketLeftAlone, { backupRetentionDays: 30, backupObjectLock: { mode: "GOVERNANCE", days: 30 }, backupReplicaRegion: "eu-central-1" })).toEqual([]);
  expect(lines(existingBucketLeftAlone, { backupBucket: "my-mail-backups", backupRetentionDays: 90, backupKmsKeyArn: "arn:aws:kms:us-east-1:123456789012:key/abc" })).toEqual([]);
});

test("with an existing bucket, each setting of a created bucket is refused at its own field", () => {
  expect(lines(existingBucketLeftAlone, { backupBucket: "my-mail-backups", backupRetentionDays: 30, backupObjectLock: { mode: "GOVERNANCE", days: 30 }, backupReplicaRegion: "eu-central-1" })).toEqual(
    [
      ["backupRetentionDays", "the lifecycle that expires old versions"],
      ["backupObjectLock", "Object Lock"],
      ["backupReplicaRegion", "the replica"],
    ].map(
      ([field, what]) =>
        `${field}: sets ${what} of a backup bucket mailstack creates, but backupBucket is an existing bucket that mailstack leaves as it is; set that on the bucket yourself, or leave out one of the two`,
    ),
  );
});
