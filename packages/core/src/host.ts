import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { MailConfig } from "./config";
import { dovecotConf, sievePipePrograms, sieveScripts } from "./dovecot";
import { fail2banJails, nftablesConf } from "./firewall";
import { DATA_VOLUME_BINDS, DATA_VOLUME_LABEL, generatedHeader, type HostEnv, PRODUCTION_ENV } from "./layout";
import { postfixMainCf, postfixMasterCf } from "./postfix";
import { rspamdLocalFiles, unboundConf } from "./rspamd";
import { CERTIFICATE_NAMES_FILE, TLS_KEY_FILE } from "./runtime-files";
import { nginxSite } from "./web";

/** A file cloud-init writes on the host. */
export interface HostFile {
  path: string;
  content: string;
  /** Octal permissions, e.g. "0644". */
  mode: string;
  /** user:group; files owned by a daemon's group are written after its package installs. */
  owner: string;
}

/** What the host needs that is fixed for its life but known only once resources exist. */
export interface HostParams {
  /** AWS region of the SSM parameters. */
  region: string;
  /** SSM path holding this stack's runtime files, e.g. /mailstack/prod/mail. */
  ssmPath: string;
  /** EBS volume id of the mail data volume. */
  dataVolumeId: string;
  /** S3 bucket of the backups; the host's restic repository lies below `restic/` in it. */
  backupBucket: string;
}

/**
 * What the backup holds: the maildirs (first: the restore script finds them there), the
 * queue of accepted mail, and the mail
 * configuration with the users file and the DKIM and TLS keys (runtime directory).
 */
export function backupPaths(env: HostEnv): string[] {
  const p = env.paths;
  return [p.vmail, p.postfixQueue, p.postfixConfig, p.dovecotConfig, p.rspamdLocal, p.runtime];
}

/** The scripts shipped with the core, read from the package's scripts/ directory. */
export function script(name: string): string {
  return readFileSync(join(__dirname, "..", "scripts", name), "utf8");
}

function defaults(config: MailConfig, params: HostParams, env: HostEnv): string {
  const values: Record<string, string | number> = {
    MAILSTACK_HOSTNAME: config.hostname,
    MAILSTACK_SSM_PATH: params.ssmPath,
    AWS_DEFAULT_REGION: params.region,
    MAILSTACK_DATA_VOLUME_ID: params.dataVolumeId,
    MAILSTACK_DATA_MOUNT: env.paths.data,
    MAILSTACK_DATA_BINDS: DATA_VOLUME_BINDS.map((b) => `${b.dir}:${b.target}`).join(" "),
    MAILSTACK_DATA_LABEL: DATA_VOLUME_LABEL,
    MAILSTACK_TLS_CERT: env.paths.tlsCert,
    MAILSTACK_TLS_KEY: env.paths.tlsKey,
    MAILSTACK_TLS_KEY_SOURCE: `${env.paths.runtime}/${TLS_KEY_FILE}`,
    MAILSTACK_CERT_NAMES: `${env.paths.runtime}/${CERTIFICATE_NAMES_FILE}`,
    MAILSTACK_CERT_DIR: env.paths.certificates,
    // postmaster@ exists on every hosted domain; a mailbox or alertEmail here would tie the
    // user data (and so the instance) to settings that change day to day.
    MAILSTACK_ACME_EMAIL: `postmaster@${config.domain}`,
    MAILSTACK_VMAIL_UID: env.vmail.uid,
    MAILSTACK_VMAIL_GID: env.vmail.gid,
    MAILSTACK_STATE: env.paths.state,
    // The regional endpoint names the region, so restic needs no GetBucketLocation call.
    MAILSTACK_BACKUP_REPOSITORY: `s3:https://s3.${params.region}.amazonaws.com/${params.backupBucket}/restic`,
    MAILSTACK_BACKUP_PATHS: backupPaths(env).join(" "),
    MAILSTACK_RUNTIME: env.paths.runtime,
  };
  return (
    generatedHeader() +
    Object.entries(values)
      .map(([k, v]) => `${k}="${String(v)}"`)
      .join("\n") +
    "\n"
  );
}

function unit(sections: Record<string, [string, string][]>): string {
  return (
    generatedHeader() +
    Object.entries(sections)
      .map(([name, entries]) => `[${name}]\n${entries.map(([k, v]) => `${k}=${v}`).join("\n")}\n`)
      .join("\n")
  );
}

const requiresMounts = (paths: string[], extra: [string, string][] = []) =>
  unit({ Unit: [["RequiresMountsFor", paths.join(" ")], ...extra] });

/**
 * Every file the host needs for its life: daemon configuration, mailstack's scripts and
 * units. Nothing here is secret and nothing changes with mailboxes or aliases, so the user
 * data built from it stays byte-identical when they change.
 */
export function hostFiles(config: MailConfig, params: HostParams, env: HostEnv = PRODUCTION_ENV): HostFile[] {
  const p = env.paths;
  const file = (path: string, content: string, mode = "0644", owner = "root:root"): HostFile => ({ path, content, mode, owner });
  const files: HostFile[] = [
    file("/etc/default/mailstack", defaults(config, params, env)),
    file(`${p.postfixConfig}/main.cf`, postfixMainCf(config, env)),
    file(`${p.postfixConfig}/master.cf`, postfixMasterCf(env)),
    file(`${p.dovecotConfig}/dovecot.conf`, dovecotConf(config, env), "0644", "root:dovecot"),
    ...Object.entries(sieveScripts()).map(([name, content]) => file(`${p.dovecotConfig}/sieve/${name}`, content)),
    ...Object.entries(sievePipePrograms()).map(([name, content]) => file(`${p.dovecotConfig}/sieve-pipe/${name}`, content, "0755")),
    ...Object.entries(rspamdLocalFiles(env)).map(([name, content]) => file(`${p.rspamdLocal}/${name}`, content)),
    file("/etc/unbound/unbound.conf.d/mailstack.conf", unboundConf(env)),
    file("/etc/systemd/resolved.conf.d/mailstack.conf", `${generatedHeader()}[Resolve]\nDNSStubListener=no\n`),
    file("/etc/mailstack-resolv.conf", `${generatedHeader()}nameserver ${env.resolver}\n# glibc passes DNSSEC's AD bit to Postfix (DANE) only with trust-ad.\noptions edns0 trust-ad\n`),
    file("/etc/nginx/conf.d/mailstack.conf", nginxSite(env)),
    file("/etc/nftables.conf", nftablesConf(config, env), "0755"),
    file("/etc/fail2ban/jail.d/mailstack.local", fail2banJails(config, env)),
    file(
      "/etc/systemd/journald.conf.d/mailstack.conf",
      `${generatedHeader()}[Journal]\nSystemMaxUse=500M\nSystemKeepFree=1G\nMaxRetentionSec=3month\n`,
    ),
    // Ubuntu's rsyslog would copy every mail log line into /var/log/mail.log and syslog, which
    // are rotated weekly with no size cap; the journal above keeps them, within its limits.
    file("/etc/rsyslog.d/10-mailstack.conf", `${generatedHeader()}mail.* stop\n`),
    file(
      "/etc/apt/apt.conf.d/52mailstack-unattended-upgrades",
      `${generatedHeader("//")}APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
Unattended-Upgrade::Remove-Unused-Kernel-Packages "true";
Unattended-Upgrade::Automatic-Reboot "true";
Unattended-Upgrade::Automatic-Reboot-Time "04:30";
Unattended-Upgrade::Mail "root";
Unattended-Upgrade::MailReport "only-on-error";
`,
    ),
    file(`${p.sbin}/mailstack-bootstrap`, script("mailstack-bootstrap.sh"), "0755"),
    file(`${p.sbin}/mailstack-data-volume`, script("mailstack-data-volume.sh"), "0755"),
    file(`${p.sbin}/mailstack-certificate`, script("mailstack-certificate.sh"), "0755"),
    file(`${p.sbin}/mailstack-backup`, script("mailstack-backup.sh"), "0755"),
    file(`${p.sbin}/mailstack-restore`, `#!/bin/sh\nexec ${p.sbin}/mailstack-backup restore "$@"\n`, "0755"),
    file(`${p.sbin}/mailstack-sync`, script("mailstack-sync.py"), "0755"),
    file(
      "/etc/systemd/system/mailstack-sync.service",
      unit({
        Unit: [["Description", "Install users, aliases and keys from SSM Parameter Store"], ["After", "network-online.target"], ["Wants", "network-online.target"]],
        Service: [["Type", "oneshot"], ["EnvironmentFile", "/etc/default/mailstack"], ["ExecStart", `${p.sbin}/mailstack-sync`], ["SuccessExitStatus", "75"]],
      }),
    ),
    file(
      "/etc/systemd/system/mailstack-sync.timer",
      unit({
        Unit: [["Description", "Apply mailbox and alias changes every two minutes"]],
        Timer: [["OnBootSec", "2min"], ["OnUnitActiveSec", "2min"], ["RandomizedDelaySec", "20s"]],
        Install: [["WantedBy", "timers.target"]],
      }),
    ),
    file(
      "/etc/systemd/system/mailstack-certificate.service",
      unit({
        Unit: [["Description", "Obtain or renew the host's Let's Encrypt certificate"], ["After", "network-online.target"], ["Wants", "network-online.target"]],
        Service: [["Type", "oneshot"], ["EnvironmentFile", "/etc/default/mailstack"], ["ExecStart", `${p.sbin}/mailstack-certificate`]],
      }),
    ),
    file(
      "/etc/systemd/system/mailstack-certificate.timer",
      unit({
        Unit: [["Description", "Check the certificate's expiry, names and key; retry a failed request"]],
        Timer: [["OnBootSec", "1min"], ["OnUnitActiveSec", "15min"]],
        Install: [["WantedBy", "timers.target"]],
      }),
    ),
    file(
      "/etc/systemd/system/mailstack-backup.service",
      unit({
        Unit: [
          ["Description", "Back up mail with restic"],
          ["After", "network-online.target"],
          ["Wants", "network-online.target"],
          // Never back up (and then prune by) an empty maildir on the root volume.
          ["RequiresMountsFor", p.vmail],
        ],
        Service: [["Type", "oneshot"], ["EnvironmentFile", "/etc/default/mailstack"], ["ExecStart", `${p.sbin}/mailstack-backup`], ["IOSchedulingClass", "idle"]],
      }),
    ),
    file(
      "/etc/systemd/system/mailstack-backup.timer",
      unit({
        Unit: [["Description", "Back up mail"]],
        Timer: [["OnCalendar", config.backupSchedule], ["RandomizedDelaySec", "30min"], ["Persistent", "true"]],
        Install: [["WantedBy", "timers.target"]],
      }),
    ),
    file("/etc/systemd/system/postfix@.service.d/mailstack.conf", requiresMounts([p.postfixQueue, p.vmail], [["Wants", "unbound.service"], ["After", "unbound.service"]])),
    file("/etc/systemd/system/dovecot.service.d/mailstack.conf", requiresMounts([p.vmail, p.postfixQueue])),
    file("/etc/systemd/system/redis-server.service.d/mailstack.conf", requiresMounts(["/var/lib/redis"])),
    file(
      "/etc/systemd/system/rspamd.service.d/mailstack.conf",
      unit({ Unit: [["Wants", "redis-server.service unbound.service"], ["After", "redis-server.service unbound.service"]] }),
    ),
  ];
  return files;
}

/** Ubuntu packages the host installs. */
export function hostPackages(config: MailConfig): string[] {
  return [
    "postfix",
    "dovecot-imapd",
    "dovecot-lmtpd",
    "dovecot-sieve",
    ...(config.pop3 ? ["dovecot-pop3d"] : []),
    "rspamd",
    "redis-server",
    "unbound",
    "nftables",
    "fail2ban",
    "certbot",
    // Serves the MTA-STS policy and client autoconfiguration on 443.
    "nginx",
    "python3-boto3",
    "restic",
    // fail2ban's systemd backend reads the journal through it.
    "python3-systemd",
    "unattended-upgrades",
  ];
}
