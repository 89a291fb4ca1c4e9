import { SNAPSHOT_RETENTION_DAYS } from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";
import * as dlm from "@pulumi/aws/dlm";
import { getPartitionOutput } from "@pulumi/aws/getPartition";
import * as iam from "@pulumi/aws/iam";

/** The tag whose value names the one snapshot policy a volume belongs to. */
export const SNAPSHOT_TAG = "mailstack:snapshots";

/** Arguments of {@link MailSnapshots}; every one is optional. */
export interface MailSnapshotsArgs {
  /**
   * Snapshots kept, one a day. Default 7: a week of whole-volume restore points; the
   * oldest is deleted when a new one is taken.
   */
  readonly retentionDays?: number;
  /**
   * When the daily snapshot starts, `HH:MM` in UTC; AWS starts it within the hour after.
   * Default 03:00, before unattended upgrades may reboot the host at 04:30.
   */
  readonly time?: string;
  /** Tags for the policy and its role; snapshots get the volume's tags (copied) instead. */
  readonly tags?: Readonly<Record<string, string>>;
}

/**
 * Daily EBS snapshots of the volumes that carry `targetTags` (give them to MailHost's data
 * volume), by a Data Lifecycle Manager policy with a role of its own. The tag's value is
 * unique to this component in this stack: DLM targets every volume of the account and region
 * that has any of a policy's tags, so a shared tag would make two stacks snapshot each
 * other's volumes.
 */
export class MailSnapshots extends pulumi.ComponentResource {
  /** Tags that put a volume under this policy. Plain values: they decide nothing else. */
  readonly targetTags: Record<string, string>;
  /** The Data Lifecycle Manager policy that takes and expires the snapshots. */
  readonly policy: dlm.LifecyclePolicy;
  /** The role DLM acts with, holding AWS's managed policy for DLM. */
  readonly role: iam.Role;

  constructor(name: string, args: MailSnapshotsArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    const retentionDays = args.retentionDays ?? SNAPSHOT_RETENTION_DAYS.default;
    const time = args.time ?? "03:00";
    const problems: string[] = [];
    // The bounds of snapshotRetentionDays, so the component takes what the stack config takes (DLM itself allows up to 1000).
    const { min, max } = SNAPSHOT_RETENTION_DAYS;
    if (!Number.isInteger(retentionDays) || retentionDays < min || retentionDays > max) problems.push(`retentionDays: ${retentionDays} must be a whole number from ${min} to ${max}`);
    if (!/^([01]\d|2[0-3]):[0-5]\d$/.test(time)) problems.push(`time: ${JSON.stringify(time)} must be HH:MM in UTC, like 03:00`);
    // Before super(): a refused component is not registered at all; the message names it.
    if (problems.length > 0) throw new pulumi.ResourceError(`MailSnapshots ${name}: ${problems.join("; ")}`, undefined);
    super("mailstack:aws:MailSnapshots", name, {}, opts);
    const parent = { parent: this };
    this.targetTags = { [SNAPSHOT_TAG]: `${pulumi.getProject()}/${pulumi.getStack()}/${name}` };

    this.role = new iam.Role(
      `${name}-role`,
      {
        description: "mailstack data volume snapshots",
        assumeRolePolicy: JSON.stringify({
          Version: "2012-10-17",
          Statement: [{ Effect: "Allow", Principal: { Service: "dlm.amazonaws.com" }, Action: "sts:AssumeRole" }],
        }),
        tags: args.tags,
      },
      parent,
    );
    // AWS's own policy for DLM: it follows DLM's needs as they change, and only DLM can use it.
    const attachment = new iam.RolePolicyAttachment(
      `${name}-role-policy`,
      {
        role: this.role.name,
        policyArn: pulumi.interpolate`arn:${getPartitionOutput({}, parent).partition}:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole`,
      },
      parent,
    );
    this.policy = new dlm.LifecyclePolicy(
      `${name}-policy`,
      {
        description: "mailstack daily snapshots of the mail data volume",
        executionRoleArn: this.role.arn,
        state: "ENABLED",
        policyDetails: {
          resourceTypes: ["VOLUME"],
          targetTags: this.targetTags,
          schedules: [
            {
              name: "daily",
              createRule: { interval: 24, intervalUnit: "HOURS", times: time },
              retainRule: { count: retentionDays },
              copyTags: true,
              tagsToAdd: { "mailstack:snapshot": "daily" },
            },
          ],
        },
        tags: args.tags,
      },
      // A policy whose role cannot act yet fails its first run.
      { parent: this, dependsOn: [attachment] },
    );
    this.registerOutputs({ policyArn: this.policy.arn });
  }
}
