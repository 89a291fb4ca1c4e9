import { createHash } from "node:crypto";
import type { DnsRecord } from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";
import * as local from "@pulumi/command/local";

/** Arguments of {@link MailReadiness}. */
export interface MailReadinessArgs {
  /** The host's name, as MailStack's `hostname` output. */
  readonly hostname: string;
  /** The host's public address, as MailStack's `publicIp` output. */
  readonly publicIp: pulumi.Input<string>;
  /** Every record the stack publishes, as MailStack's `dnsRecords` output; the check wants exactly these. */
  readonly dnsRecords: pulumi.Input<DnsRecord[]>;
  /** The bundle this deployment publishes: the wait ends only once the host reports it applied. */
  readonly hostBundleSha256: pulumi.Input<string>;
  /** The stack's SSM path, below which the host reports its status. */
  readonly parameterPath: string;
  /** The stack's AWS region: where the check reads the host's reports. */
  readonly region: pulumi.Input<string>;
  /** How long `pulumi up` waits for a healthy service before it fails, in minutes. */
  readonly timeoutMinutes: number;
  /**
   * More options for `mailstack check`, e.g. `["--skip", "port:25"]` where the machine that
   * runs `pulumi up` may not open port 25 (many home and office networks block it). Default
   * none: every check.
   */
  readonly checkOptions?: readonly string[];
}

/**
 * The last step of a `pulumi up`: a local command that runs `mailstack check --wait` on the
 * machine running Pulumi until the host reports this deployment's bundle applied and every
 * check passes, or fails the update with the check's table, which names what is wrong.
 *
 * A preview never runs it (the command provider runs commands only on update). It runs again
 * whenever what it checks changes: the bundle, the address or any DNS record. It needs the
 * `mailstack` command in the Pulumi project (`npm install @mailstack/cli`) and AWS
 * credentials in the environment to read the host's reports.
 */
export class MailReadiness extends pulumi.ComponentResource {
  /** The command; its stdout is the check's final table. */
  readonly command: local.Command;

  constructor(name: string, args: MailReadinessArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mailstack:index:MailReadiness", name, {}, opts);
    // The same shape as `pulumi stack output --json`, so the check reads one format.
    const expected = pulumi
      .all([args.publicIp, args.dnsRecords, args.hostBundleSha256])
      .apply(([publicIp, dnsRecords, hostBundleSha256]) => JSON.stringify({ hostname: args.hostname, publicIp, dnsRecords, hostBundleSha256, parameterPath: args.parameterPath }));
    const seconds = Math.round(args.timeoutMinutes * 60);
    const options = ["--outputs", "-", "--status", "--wait", String(seconds), ...(args.checkOptions ?? [])];
    // `npx --no` runs the project's own mailstack, never one fetched from the registry; the
    // command names no path of this machine, so another machine's `up` shows no change.
    const create = ["npx", "--no", "--", "mailstack", "check", ...options].map(shellWord).join(" ");
    this.command = new local.Command(
      `${name}-check`,
      {
        create,
        stdin: expected,
        environment: { AWS_REGION: args.region },
        // The hash of what is checked, not the records themselves: a trigger's value is shown in every diff.
        triggers: [expected.apply((e) => createHash("sha256").update(e).digest("hex"))],
      },
      { parent: this },
    );
    this.registerOutputs({});
  }
}

function shellWord(word: string): string {
  return /^[A-Za-z0-9@%+=:,./_-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

