import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { MailConfig } from "./config";
import { dovecotConf, sievePipePrograms, sieveScripts } from "./dovecot";
import { fail2banJails, nftablesConf } from "./firewall";
import {
  DATA_VOLUME_BINDS,
  DATA_VOLUME_LABEL,
  DATA_VOLUME_XEN_DEVICE,
  DEFAULTS_FILE,
  generatedHeader,
  HOST_SCRIPTS,
  type HostEnv,
  PRODUCTION_ENV,
  STATE_FILES,
  UNITS,
} from "./layout";
import { postfixMainCf, postfixMasterCf } from "./postfix";
import { rspamdLocalFiles, unboundConf } from "./rspamd";
import { BACKUP_KEEP_FILE, CERTIFICATE_NAMES_FILE, RESTIC_PASSWORD_FILE, TLS_KEY_FILE } from "./runtime-files";
import { nginxSite } from "./web";

/** A file cloud-init writes on the host. */
export interface HostFile {
  /** Absolute path on the host. */
  path: string;
  /** The file's content. */
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
  /** The host's restic repository, as {@link resticRepositoryUrl} gives it. */
  backupRepository: string;
}

/**
 * What the backup holds: the maildirs, the queue of accepted mail, and the mail
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
    MAILSTACK_BACKUP_REPOSITORY: params.backupRepository,
    MAILSTACK_BACKUP_PATHS: backupPaths(env).join(" "),
    MAILSTACK_RUNTIME: env.paths.runtime,
    ...scriptSettings(env),
  };
  return (
    generatedHeader() +
    Object.entries(values)
      .map(([k, v]) => `${k}="${String(v)}"`)
      .join("\n") +
    "\n"
  );
}

/**
 * The rest of what the scripts need to know about the host, so that none of them states a
 * path, file or unit name of its own.
 */
function scriptSettings(env: HostEnv): Record<string, string> {
  const p = env.paths;
  const command = (name: string) => `${p.sbin}/${name}`;
  return {
    MAILSTACK_VMAIL: p.vmail,
    MAILSTACK_SIEVE: p.sieve,
    MAILSTACK_RESOLV_CONF: p.resolvConf,
    MAILSTACK_DATA_XEN_DEVICE: DATA_VOLUME_XEN_DEVICE,
    MAILSTACK_SYNC_STATE: `${p.state}/${STATE_FILES.sync}`,
    MAILSTACK_BACKUP_STATUS: `${p.state}/${STATE_FILES.backupStatus}`,
    MAILSTACK_RESTIC_CACHE: `${p.state}/${STATE_FILES.resticCache}`,
    MAILSTACK_RESTIC_PASSWORD_FILE: `${p.runtime}/${RESTIC_PASSWORD_FILE}`,
    MAILSTACK_BACKUP_KEEP_FILE: `${p.runtime}/${BACKUP_KEEP_FILE}`,
    MAILSTACK_DATA_VOLUME_COMMAND: command(HOST_SCRIPTS.dataVolume),
    MAILSTACK_SYNC_COMMAND: command(HOST_SCRIPTS.sync),
    MAILSTACK_CERTIFICATE_COMMAND: command(HOST_SCRIPTS.certificate),
    // Started by their packages on the root volume; stopped until the data volume is in place.
    MAILSTACK_BOOT_STOP: [UNITS.postfix, UNITS.dovecot, UNITS.rspamd, UNITS.redis, UNITS.nginx].join(" "),
    MAILSTACK_BOOT_START: [UNITS.redis, UNITS.rspamd, UNITS.dovecot, UNITS.postfix, UNITS.nginx, UNITS.fail2ban, ...TIMERS.map((t) => `${t}.timer`)].join(" "),
    // The daemons that read the certificate, reloaded after a new one.
    MAILSTACK_TLS_UNITS: [UNITS.postfix, UNITS.dovecot, UNITS.nginx].join(" "),
    MAILSTACK_RESOLVER_UNIT: UNITS.unbound,
    MAILSTACK_RESOLVCONF_UNIT: UNITS.unboundResolvconf,
    MAILSTACK_RESOLVED_UNIT: UNITS.resolved,
    MAILSTACK_FIREWALL_UNIT: UNITS.nftables,
  };
}

/** The scripts run by a timer, each by a service of its own name. */
const TIMERS = [HOST_SCRIPTS.sync, HOST_SCRIPTS.certificate, HOST_SCRIPTS.backup];

function unit(sections: Record<string, [string, string][]>): string {
  return (
    generatedHeader() +
    Object.entries(sections)
      .map(([name, entries]) => `[${name}]\n${entries.map(([k, v]) => `${k}=${v}`).join("\n")}\n`)
      .join("\n")
  );
}

/** Where mailstack's units and drop-ins go. */
const SYSTEMD = "/etc/systemd/system";

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
    file(DEFAULTS_FILE, defaults(config, params, env)),
    file(`${p.postfixConfig}/main.cf`, postfixMainCf(config, env)),
    file(`${p.postfixConfig}/master.cf`, postfixMasterCf(env)),
    file(`${p.dovecotConfig}/dovecot.conf`, dovecotConf(config, env), "0644", "root:dovecot"),
    ...Object.entries(sieveScripts()).map(([name, content]) => file(`${p.sieve}/${name}`, content)),
    ...Object.entries(sievePipePrograms()).map(([name, content]) => file(`${p.sievePipe}/${name}`, content, "0755")),
    ...Object.entries(rspamdLocalFiles(env)).map(([name, content]) => file(`${p.rspamdLocal}/${name}`, content)),
    file("/etc/unbound/unbound.conf.d/mailstack.conf", unboundConf(env)),
    file("/etc/systemd/resolved.conf.d/mailstack.conf", `${generatedHeader()}[Resolve]\nDNSStubListener=no\n`),
    file(p.resolvConf, `${generatedHeader()}nameserver ${env.resolver}\n# glibc passes DNSSEC's AD bit to Postfix (DANE) only with trust-ad.\noptions edns0 trust-ad\n`),
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
    file(`${p.sbin}/${HOST_SCRIPTS.bootstrap}`, script("mailstack-bootstrap.sh"), "0755"),
    file(`${p.sbin}/${HOST_SCRIPTS.dataVolume}`, script("mailstack-data-volume.sh"), "0755"),
    file(`${p.sbin}/${HOST_SCRIPTS.certificate}`, script("mailstack-certificate.sh"), "0755"),
    file(`${p.sbin}/${HOST_SCRIPTS.backup}`, script("mailstack-backup.sh"), "0755"),
    file(`${p.sbin}/${HOST_SCRIPTS.restore}`, `#!/bin/sh\nexec ${p.sbin}/${HOST_SCRIPTS.backup} restore "$@"\n`, "0755"),
    file(`${p.sbin}/${HOST_SCRIPTS.sync}`, script("mailstack-sync.py"), "0755"),
    file(
      `${SYSTEMD}/${HOST_SCRIPTS.sync}.service`,
      unit({
        Unit: [["Description", "Install users, aliases and keys from SSM Parameter Store"], ["After", "network-online.target"], ["Wants", "network-online.target"]],
        Service: [["Type", "oneshot"], ["EnvironmentFile", DEFAULTS_FILE], ["ExecStart", `${p.sbin}/${HOST_SCRIPTS.sync}`], ["SuccessExitStatus", "75"]],
      }),
    ),
    file(
      `${SYSTEMD}/${HOST_SCRIPTS.sync}.timer`,
      unit({
        Unit: [["Description", "Apply mailbox and alias changes every two minutes"]],
        Timer: [["OnBootSec", "2min"], ["OnUnitActiveSec", "2min"], ["RandomizedDelaySec", "20s"]],
        Install: [["WantedBy", "timers.target"]],
      }),
    ),
    file(
      `${SYSTEMD}/${HOST_SCRIPTS.certificate}.service`,
      unit({
        Unit: [["Description", "Obtain or renew the host's Let's Encrypt certificate"], ["After", "network-online.target"], ["Wants", "network-online.target"]],
        Service: [["Type", "oneshot"], ["EnvironmentFile", DEFAULTS_FILE], ["ExecStart", `${p.sbin}/${HOST_SCRIPTS.certificate}`]],
      }),
    ),
    file(
      `${SYSTEMD}/${HOST_SCRIPTS.certificate}.timer`,
      unit({
        Unit: [["Description", "Check the certificate's expiry, names and key; retry a failed request"]],
        Timer: [["OnBootSec", "1min"], ["OnUnitActiveSec", "15min"]],
        Install: [["WantedBy", "timers.target"]],
      }),
    ),
    file(
      `${SYSTEMD}/${HOST_SCRIPTS.backup}.service`,
      unit({
        Unit: [
          ["Description", "Back up mail with restic"],
          ["After", "network-online.target"],
          ["Wants", "network-online.target"],
          // Never back up (and then prune by) an empty maildir on the root volume.
          ["RequiresMountsFor", p.vmail],
        ],
        Service: [["Type", "oneshot"], ["EnvironmentFile", DEFAULTS_FILE], ["ExecStart", `${p.sbin}/${HOST_SCRIPTS.backup}`], ["IOSchedulingClass", "idle"]],
      }),
    ),
    file(
      `${SYSTEMD}/${HOST_SCRIPTS.backup}.timer`,
      unit({
        Unit: [["Description", "Back up mail"]],
        Timer: [["OnCalendar", config.backupSchedule], ["RandomizedDelaySec", "30min"], ["Persistent", "true"]],
        Install: [["WantedBy", "timers.target"]],
      }),
    ),
    // The template: Ubuntu's postfix.service starts the instance postfix@-.service.
    file(`${SYSTEMD}/postfix@.service.d/mailstack.conf`, requiresMounts([p.postfixQueue, p.vmail], [["Wants", UNITS.unbound], ["After", UNITS.unbound]])),
    file(`${SYSTEMD}/${UNITS.dovecot}.d/mailstack.conf`, requiresMounts([p.vmail, p.postfixQueue])),
    file(`${SYSTEMD}/${UNITS.redis}.d/mailstack.conf`, requiresMounts([p.redis])),
    file(
      `${SYSTEMD}/${UNITS.rspamd}.d/mailstack.conf`,
      unit({ Unit: [["Wants", `${UNITS.redis} ${UNITS.unbound}`], ["After", `${UNITS.redis} ${UNITS.unbound}`]] }),
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
