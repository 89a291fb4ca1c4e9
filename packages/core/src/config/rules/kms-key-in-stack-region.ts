import { KMS_KEY_ARN } from "../regions";
import type { ConfigContext } from "./context";

/** The backup bucket's KMS key is in the stack's region: S3 uses keys of its own region only. */
export function kmsKeyInStackRegion(ctx: ConfigContext): void {
  const arn = ctx.input.backupKmsKeyArn;
  // Not a string: a Pulumi output, known only during the deployment.
  const keyRegion = typeof arn === "string" ? KMS_KEY_ARN.exec(arn)?.[1] : undefined;
  if (ctx.region !== undefined && keyRegion !== undefined && keyRegion !== ctx.region) {
    ctx.fail("backupKmsKeyArn", `is a key in ${keyRegion}, but the bucket is in ${ctx.region} and S3 can use only keys of its own region; use a key in ${ctx.region}`);
  }
}
