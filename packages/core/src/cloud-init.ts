import { gzipSync } from "node:zlib";
import { dump } from "js-yaml";
import type { MailConfig } from "./config";
import { hostFiles, hostPackages, type HostParams } from "./host";
import { HOST_SCRIPTS, type HostEnv, POLICY_RC_D, PRODUCTION_ENV } from "./layout";

/** EC2 refuses user data over 16 KiB (before base64). */
export const USER_DATA_LIMIT = 16384;

/** The policy-rc.d of the first boot: "do not start", whatever the daemon or action. */
const POLICY_RC_D_SCRIPT = "#!/bin/sh\nexit 101\n";

const BOOTSTRAP_UNIT = `${HOST_SCRIPTS.bootstrap}.service`;

/** What cloud-init's write_files gives a file that states no permissions or owner. */
const WRITE_FILES_DEFAULTS = { mode: "0644", owner: "root:root" };

/**
 * The #cloud-config document that turns a bare Ubuntu 24.04 instance into the mail host.
 * One file is written before the packages install: a policy-rc.d that keeps their scripts
 * from starting any daemon (on the root volume, with no configuration yet). The rest are
 * written after (`defer`), so that daemon groups exist and package scripts do not overwrite
 * them. cloud-init then only enables and starts the bootstrap unit, which does the ordered
 * work and which systemd retries until it succeeds.
 */
export function cloudInit(config: MailConfig, params: HostParams, env: HostEnv = PRODUCTION_ENV): string {
  const hostLabel = config.hostname.split(".")[0];
  const document = {
    hostname: hostLabel,
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
    packages: hostPackages(config),
    write_files: [
      // Not deferred: written in cloud-init's first stage, before the packages install.
      { path: POLICY_RC_D, content: POLICY_RC_D_SCRIPT, permissions: "0755" },
      ...hostFiles(config, params, env).map((f) => ({
        path: f.path,
        content: f.content,
        // cloud-init's defaults (0644, root:root) go unsaid: the user data is near EC2's limit.
        ...(f.mode === WRITE_FILES_DEFAULTS.mode ? {} : { permissions: f.mode }),
        ...(f.owner === WRITE_FILES_DEFAULTS.owner ? {} : { owner: f.owner }),
        defer: true,
      })),
    ],
    // --no-block: the bootstrap may wait for the data volume or SSM; cloud-init does not.
    runcmd: [`systemctl enable ${BOOTSTRAP_UNIT}`, `systemctl start --no-block ${BOOTSTRAP_UNIT}`],
  };
  // noRefs: every file is written out in full, never as a YAML alias of another. Indented by
  // one space, sequences not at all: the same document, some 200 bytes smaller compressed.
  return `#cloud-config\n${dump(document, { lineWidth: -1, noRefs: true, indent: 1, noArrayIndent: true })}`;
}

/** gzip of the document, which cloud-init detects and inflates; keeps it under EC2's limit. */
export function compressedUserData(document: string): Buffer {
  const gz = gzipSync(Buffer.from(document, "utf8"), { level: 9 });
  if (gz.length > USER_DATA_LIMIT) {
    throw new Error(`user data is ${gz.length} bytes compressed, over EC2's ${USER_DATA_LIMIT}-byte limit`);
  }
  return gz;
}
