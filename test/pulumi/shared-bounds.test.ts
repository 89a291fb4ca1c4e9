// MailSnapshots and MailBackup take their retentions with the bounds and defaults of the
// config fields that feed them, so a component used on its own accepts what a stack does.
import { BACKUP_RETENTION_DAYS, SNAPSHOT_RETENTION_DAYS } from "@mailstack/core";
import { MailBackup, MailSnapshots } from "@mailstack/pulumi";
import * as pulumi from "@pulumi/pulumi";
import { runProgram } from "../support/harness";

test("retentions past the config's bounds are refused as errors of the component, before any resource", async () => {
  const errors: unknown[] = [];
  const run = await runProgram(() => {
    for (const make of [() => new MailSnapshots("s", { retentionDays: SNAPSHOT_RETENTION_DAYS.max + 1 }), () => new MailBackup("b", { retentionDays: BACKUP_RETENTION_DAYS.max + 1 })]) {
      try {
        make();
      } catch (e) {
        errors.push(e);
      }
    }
  });
  expect(errors.map((e) => (e as Error).message)).toEqual([
    expect.stringContaining("MailSnapshots s: retentionDays: 366 must be a whole number from 1 to 365"),
    expect.stringContaining("MailBackup b: retentionDays: 3651 is not a whole number of days from 1 to 3650"),
  ]);
  for (const error of errors) expect(pulumi.ResourceError.isInstance(error)).toBe(true);
  expect(run.record.resources.map((r) => r.type)).toEqual(["pulumi:pulumi:Stack"]);
});

test("without a retention, each takes the field's default", async () => {
  const run = await runProgram(() => {
    new MailSnapshots("s");
    new MailBackup("b");
  });
  const policy = run.record.resources.find((r) => r.type === "aws:dlm/lifecyclePolicy:LifecyclePolicy")!;
  expect((policy.inputs as { policyDetails: { schedules: { retainRule: { count: number } }[] } }).policyDetails.schedules[0].retainRule.count).toBe(SNAPSHOT_RETENTION_DAYS.default);
  const lifecycle = run.record.resources.find((r) => r.type === "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")!;
  expect((lifecycle.inputs as { rules: { noncurrentVersionExpiration: unknown }[] }).rules[0].noncurrentVersionExpiration).toEqual({ noncurrentDays: BACKUP_RETENTION_DAYS.default });
});
