import { CREATED_BUCKET_SETTINGS } from "../../backup";
import { DEFAULTS } from "../fields";
import type { ConfigContext } from "./context";

/**
 * An existing backup bucket is left as it is, so the settings of a bucket mailstack creates
 * are refused with it: the retention only when it is not the default, which Pulumi.yaml
 * declares and so always sets; the KMS key never, since the host's role needs it when the
 * bucket's own encryption uses it.
 */
export function existingBucketLeftAlone(ctx: ConfigContext): void {
  if (ctx.input.backupBucket === undefined) return;
  for (const [field, what] of Object.entries(CREATED_BUCKET_SETTINGS) as [keyof typeof CREATED_BUCKET_SETTINGS, string][]) {
    const value = ctx.input[field];
    if (value === undefined || field === "backupKmsKeyArn" || (field === "backupRetentionDays" && value === DEFAULTS.backupRetentionDays)) continue;
    ctx.fail(field, `sets ${what} of a backup bucket mailstack creates, but backupBucket is an existing bucket that mailstack leaves as it is; set that on the bucket yourself, or leave out one of the two`);
  }
}
