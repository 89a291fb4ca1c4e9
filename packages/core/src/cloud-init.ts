import { gzipSync } from "node:zlib";
import { dump } from "js-yaml";
import type { MailConfig } from "./config";
import { hostFiles, hostPackages, type HostParams } from "./host";
import { HOST_SCRIPTS, type HostEnv, PRODUCTION_ENV } from "./layout";

/** EC2 refuses user data over 16 KiB (before base64). */
export const USER_DATA_LIMIT = 16384;

/**
 * The #cloud-config document that turns a bare Ubuntu 24.04 instance into the mail host.
 * Files are written after the packages install (`defer`), so that daemon groups exist and
 * package scripts do not overwrite them; the bootstrap script then does the ordered work.
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
    write_files: hostFiles(config, params, env).map((f) => ({
      path: f.path,
      content: f.content,
      permissions: f.mode,
      owner: f.owner,
      defer: true,
    })),
    runcmd: [[`${env.paths.sbin}/${HOST_SCRIPTS.bootstrap}`]],
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
