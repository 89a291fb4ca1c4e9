import { gzipSync } from "node:zlib";
import { dump } from "js-yaml";
import type { MailConfig } from "./config";
import { bootstrapDone, bundlePointerName, bundleStatePaths, handOverCommands, hostPackages, readScript, SYSTEMD, unit } from "./host";
import { HOST_SCRIPTS, type HostEnv, POLICY_RC_D, PRODUCTION_ENV } from "./layout";

/** EC2 refuses user data over 16 KiB (before base64). */
export const USER_DATA_LIMIT = 16384;

/**
 * What the user data may take compressed: a quarter of EC2's limit. Everything else is in the
 * host bundle, so the user data does not grow with the host's features.
 */
export const USER_DATA_BUDGET = 4096;

/** What the user data needs besides the config: where the host finds its bundle's pointer. */
export interface BootParams {
  /** AWS region of the SSM parameters. */
  region: string;
  /** SSM path of the stack's parameters, e.g. /mailstack/prod/mail. */
  ssmPath: string;
}

/** The policy-rc.d of the first boot: "do not start", whatever the daemon or action. */
const POLICY_RC_D_SCRIPT = "#!/bin/sh\nexit 101\n";

const BOOTSTRAP_UNIT = `${HOST_SCRIPTS.bootstrap}.service`;

/**
 * The #cloud-config document that turns a bare Ubuntu 24.04 instance into the mail host. It
 * holds only what must exist before the network: the packages, a policy-rc.d written before
 * they install (so that their scripts start no daemon, on the root volume, with no
 * configuration yet), and the first-boot program with its unit. cloud-init only enables and
 * starts that unit, which systemd retries until it succeeds: it fetches the host bundle the
 * SSM pointer names, checks its hash, installs it and runs its bootstrap. Nothing in it
 * changes with the host's files, so changing them never replaces the instance.
 */
export function cloudInit(config: MailConfig, boot: BootParams, env: HostEnv = PRODUCTION_ENV): string {
  const command = (name: string) => `${env.paths.sbin}/${name}`;
  // The first boot's settings; every later program reads the bundle's settings file instead.
  const settings = {
    AWS_DEFAULT_REGION: boot.region,
    MAILSTACK_BUNDLE_POINTER: bundlePointerName(boot.ssmPath),
    ...bundleStatePaths(env),
    ...handOverCommands(env),
  };
  // cloud-init only enables and starts it, so a missing volume or an unreachable SSM leaves a
  // unit that systemd retries (across reboots too) rather than a failed cloud-init that nothing
  // retries. After multi-user.target, which it would otherwise hold back while it retries.
  const bootstrapUnit = unit({
    Unit: [
      ["Description", "mailstack first-boot setup"],
      ["After", "network-online.target multi-user.target"],
      ["Wants", "network-online.target"],
      ["ConditionPathExists", `!${bootstrapDone(env)}`],
      ["StartLimitIntervalSec", "0"],
    ],
    Service: [
      ["Type", "oneshot"],
      ["RemainAfterExit", "yes"],
      ...Object.entries(settings).map(([k, v]): [string, string] => ["Environment", `${k}=${v}`]),
      ["ExecStart", command(HOST_SCRIPTS.firstBoot)],
      ["Restart", "on-failure"],
      ["RestartSec", "20s"],
      // Backoff (systemd 254 and later; Ubuntu 24.04 has 255): each wait longer than the one
      // before, up to RestartMaxDelaySec after RestartSteps restarts, then that wait forever.
      ["RestartSteps", "5"],
      ["RestartMaxDelaySec", "5min"],
      ["TimeoutStartSec", "30min"],
    ],
    Install: [["WantedBy", "multi-user.target"]],
  });
  const document = {
    hostname: config.hostname.split(".")[0],
    fqdn: config.hostname,
    prefer_fqdn_over_hostname: true,
    manage_etc_hosts: true,
    timezone: "Etc/UTC",
    package_update: true,
    package_upgrade: true,
    apt: {
      // Postfix asks how to configure itself; mailstack writes the whole configuration.
      debconf_selections: { postfix: "postfix postfix/main_mailer_type select No configuration" },
    },
    packages: hostPackages(),
    write_files: [
      // Not deferred: written in cloud-init's first stage, before the packages install.
      { path: POLICY_RC_D, content: POLICY_RC_D_SCRIPT, permissions: "0755" },
      { path: command(HOST_SCRIPTS.firstBoot), content: readScript("mailstack-first-boot.py"), permissions: "0755", defer: true },
      { path: `${SYSTEMD}/${BOOTSTRAP_UNIT}`, content: bootstrapUnit, defer: true },
    ],
    // --no-block: the first boot may wait for the data volume or SSM; cloud-init does not.
    runcmd: [`systemctl enable ${BOOTSTRAP_UNIT}`, `systemctl start --no-block ${BOOTSTRAP_UNIT}`],
  };
  // noRefs: every file is written out in full, never as a YAML alias of another.
  return `#cloud-config\n${dump(document, { lineWidth: -1, noRefs: true })}`;
}

/** gzip of the document, which cloud-init detects and inflates; keeps it under EC2's limit. */
export function compressedUserData(document: string): Buffer {
  const gz = gzipSync(Buffer.from(document, "utf8"), { level: 9 });
  if (gz.length > USER_DATA_LIMIT) {
    throw new Error(`user data is ${gz.length} bytes compressed, over EC2's ${USER_DATA_LIMIT}-byte limit`);
  }
  return gz;
}
