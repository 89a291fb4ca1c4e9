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
  FAILURE_TAG,
  generatedHeader,
  HOST_BUNDLE_PARAMETERS,
  HOST_SCRIPTS,
  type HostEnv,
  POLICY_RC_D,
  POSTSRSD,
  PRODUCTION_ENV,
  SENDMAIL,
  STATE_FILES,
  UNITS,
} from "./layout";
import { DOVECOT_LDAP_CONF, dovecotLdapConf, LDAP_CA_FILE } from "./ldap";
import { postfixMainCf, postfixMasterCf, postsrsdSettings, SUBMISSION_HEADER_CHECKS, submissionHeaderChecks } from "./postfix";
import { redisListenArgs, rspamdLocalFiles, rspamdLocalLua, socketDirCommand, unboundConf } from "./rspamd";
import { BACKUP_KEEP_FILE, CERTIFICATE_NAMES_FILE, RESTIC_PASSWORD_FILE, runtimeFileTable, TLS_KEY_FILE } from "./runtime-files";
import { HOST_HEALTH_PARAMETER, HOST_METRICS, logGroupName, METRIC_DIMENSION, METRIC_NAMESPACE } from "./monitoring";
import { SES_INBOUND_PREFIX, SES_REJECTED_PREFIX } from "./ses";
import { nginxSite } from "./web";

/** A file of the host bundle. */
export interface HostFile {
  /** Absolute path on the host. */
  path: string;
  /** The file's content. */
  content: string;
  /** Octal permissions, e.g. "0644". */
  mode: string;
  /** user:group; files owned by a daemon's group are written after its package installs. */
  owner: string;
  /**
   * systemd units to reload when the file changes on a running host (timers are restarted).
   * Empty for files read afresh at each use (scripts, the settings file) and for unit files,
   * which take effect with systemd's daemon-reload at the next start.
   */
  reload: string[];
  /** The daemon checker (a key of {@link HOST_CHECKS}) that must accept the file before it is installed. */
  check?: HostCheck;
}

/** Where mailstack's units and drop-ins go. */
export const SYSTEMD = "/etc/systemd/system";

/**
 * Each daemon's own configuration checker, run by mailstack-sync before a new bundle replaces
 * a file it reads, with the new files shadowing the live ones (see docs/architecture.md).
 */
export const HOST_CHECKS = {
  /** main.cf and master.cf. */
  postfix: ["postfix", "check"],
  /** dovecot.conf: doveconf refuses unknown settings and bad values. */
  dovecot: ["doveconf", "-n"],
  /** rspamd's local.d. */
  rspamd: ["rspamadm", "configtest"],
  /** The MTA-STS and autoconfig site. */
  nginx: ["nginx", "-t", "-q"],
  /** The ruleset, parsed and checked without loading it. */
  nftables: ["nft", "-c", "-f", "/etc/nftables.conf"],
  /** The resolver's configuration, with its includes. */
  unbound: ["unbound-checkconf"],
  /** The jails. */
  fail2ban: ["fail2ban-client", "--test"],
  /** mailstack's units and timers. */
  systemd: ["sh", "-c", `systemd-analyze verify --man=no ${SYSTEMD}/mailstack-*.service ${SYSTEMD}/mailstack-*.timer`],
} as const satisfies Record<string, readonly string[]>;

/** A key of {@link HOST_CHECKS}. */
export type HostCheck = keyof typeof HOST_CHECKS;

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
  /**
   * The bucket SES keeps inbound mail in while the host is away, in SES's region: its objects
   * below `inbound/` are what mailstack-ses-import hands to Postfix. Required with `sesInbound`
   * (hostFiles throws without it), unused otherwise.
   */
  sesInboundBucket?: string;
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
export function readScript(name: string): string {
  return readFileSync(join(__dirname, "..", "scripts", name), "utf8");
}

/** The SSM parameter that names the bundle to run, below the stack's path. */
export const bundlePointerName = (ssmPath: string): string => `${ssmPath}/${HOST_BUNDLE_PARAMETERS.pointer}`;

/**
 * Where mailstack-sync keeps the bundles it ran and its record of them: the same for the first
 * boot (its unit's environment) and every later run (the settings file).
 */
export function bundleStatePaths(env: HostEnv): {
  /** The running and previous bundle documents. */
  MAILSTACK_BUNDLES: string;
  /** The bundle state file. */
  MAILSTACK_BUNDLE_STATE: string;
} {
  return { MAILSTACK_BUNDLES: `${env.paths.state}/${STATE_FILES.bundles}`, MAILSTACK_BUNDLE_STATE: `${env.paths.state}/${STATE_FILES.bundleState}` };
}

/** The programs the first boot hands over to, as the settings file names them too. */
export function handOverCommands(env: HostEnv): {
  /** mailstack-sync, which installs the first bundle. */
  MAILSTACK_SYNC_COMMAND: string;
  /** The bundle's bootstrap. */
  MAILSTACK_BOOTSTRAP_COMMAND: string;
} {
  return { MAILSTACK_SYNC_COMMAND: `${env.paths.sbin}/${HOST_SCRIPTS.sync}`, MAILSTACK_BOOTSTRAP_COMMAND: `${env.paths.sbin}/${HOST_SCRIPTS.bootstrap}` };
}

function defaults(config: MailConfig, params: HostParams, env: HostEnv): string {
  const values: Record<string, string | number> = {
    MAILSTACK_HOSTNAME: config.hostname,
    MAILSTACK_SSM_PATH: params.ssmPath,
    // Read by the first boot from its unit; here for the operator, who may look for it.
    MAILSTACK_BUNDLE_POINTER: bundlePointerName(params.ssmPath),
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
    // ACME account's contact to settings that change day to day.
    MAILSTACK_ACME_EMAIL: `postmaster@${config.domain}`,
    MAILSTACK_VMAIL_UID: env.vmail.uid,
    MAILSTACK_VMAIL_GID: env.vmail.gid,
    MAILSTACK_STATE: env.paths.state,
    MAILSTACK_BACKUP_REPOSITORY: params.backupRepository,
    MAILSTACK_BACKUP_PATHS: backupPaths(env).join(" "),
    MAILSTACK_RUNTIME: env.paths.runtime,
    MAILSTACK_RUNTIME_TABLE: env.paths.runtimeTable,
    ...monitoringSettings(params),
    ...scriptSettings(config, env),
    ...sesImportSettings(config, params, env),
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
 * What the metrics timer and the log shipper send where: CloudWatch's names, as the stack's
 * alarms, filters and dashboard name them (monitoring.ts), so the host cannot report under a
 * name nobody watches.
 */
function monitoringSettings(params: HostParams): Record<string, string> {
  return {
    MAILSTACK_METRIC_NAMESPACE: METRIC_NAMESPACE,
    MAILSTACK_METRIC_DIMENSION: METRIC_DIMENSION,
    // key=Name:Unit: the script computes each key; the health document is keyed the same way.
    MAILSTACK_METRICS: Object.entries(HOST_METRICS)
      .map(([key, m]) => `${key}=${m.name}:${m.unit}`)
      .join(" "),
    MAILSTACK_HEALTH_PARAMETER: `${params.ssmPath}/${HOST_HEALTH_PARAMETER}`,
    MAILSTACK_LOG_GROUP: logGroupName(params.ssmPath),
  };
}

/**
 * The rest of what the scripts need to know about the host, so that none of them states a
 * path, file or unit name of its own.
 */
function scriptSettings(config: MailConfig, env: HostEnv): Record<string, string> {
  const p = env.paths;
  const command = (name: string) => `${p.sbin}/${name}`;
  return {
    MAILSTACK_VMAIL: p.vmail,
    MAILSTACK_SIEVE: p.sieve,
    MAILSTACK_RESOLV_CONF: p.resolvConf,
    MAILSTACK_DATA_XEN_DEVICE: DATA_VOLUME_XEN_DEVICE,
    MAILSTACK_SYNC_STATE: `${p.state}/${STATE_FILES.sync}`,
    ...bundleStatePaths(env),
    MAILSTACK_BACKUP_STATUS: `${p.state}/${STATE_FILES.backupStatus}`,
    MAILSTACK_LOG_CURSOR: `${p.state}/${STATE_FILES.logCursor}`,
    MAILSTACK_LOG_UNITS: loggedUnits(config).join(" "),
    MAILSTACK_POSTFIX_QUEUE: p.postfixQueue,
    MAILSTACK_RESTIC_CACHE: `${p.state}/${STATE_FILES.resticCache}`,
    MAILSTACK_RESTIC_PASSWORD_FILE: `${p.runtime}/${RESTIC_PASSWORD_FILE}`,
    MAILSTACK_BACKUP_KEEP_FILE: `${p.runtime}/${BACKUP_KEEP_FILE}`,
    MAILSTACK_DATA_VOLUME_UNIT: DATA_VOLUME_UNIT,
    ...handOverCommands(env),
    MAILSTACK_CERTIFICATE_COMMAND: command(HOST_SCRIPTS.certificate),
    // The log shipper tells the postmaster when it has not shipped for long (it never fails itself).
    MAILSTACK_ALERT_COMMAND: command(HOST_SCRIPTS.alert),
    MAILSTACK_POLICY_RC_D: POLICY_RC_D,
    MAILSTACK_BOOTSTRAP_DONE: bootstrapDone(env),
    // Enabled by their packages, so started at a boot before the bootstrap finished; stopped
    // until the data volume is in place.
    MAILSTACK_BOOT_STOP: BOOT_STOP.join(" "),
    MAILSTACK_BOOT_START: bootStart(config).join(" "),
    // The daemons the bootstrap starts or stops: none stays failed from before it ran.
    MAILSTACK_BOOT_RESET: [UNITS.postfixInstance, ...BOOT_STOP, UNITS.fail2ban, UNITS.unbound, UNITS.unboundResolvconf, UNITS.resolved, UNITS.nftables, LOGS_UNIT].join(" "),
    // The daemons that read the certificate, reloaded after a new one.
    MAILSTACK_TLS_UNITS: [UNITS.postfix, UNITS.dovecot, UNITS.nginx].join(" "),
    MAILSTACK_RESOLVER_UNIT: UNITS.unbound,
    MAILSTACK_RESOLVCONF_UNIT: UNITS.unboundResolvconf,
    MAILSTACK_RESOLVED_UNIT: UNITS.resolved,
    MAILSTACK_FIREWALL_UNIT: UNITS.nftables,
    MAILSTACK_FAILURE_TAG: FAILURE_TAG,
    MAILSTACK_SENDMAIL: SENDMAIL,
  };
}

/**
 * What the SES importer needs with sesInbound: where SES keeps the mail and how its keys are
 * laid out (the core's prefixes), the loopback port of Postfix's import service, and the
 * record of the objects already handed over. None without sesInbound.
 */
function sesImportSettings(config: MailConfig, params: HostParams, env: HostEnv): Record<string, string | number> {
  if (!config.ses?.inbound) return {};
  return {
    MAILSTACK_SES_BUCKET: sesInboundBucket(params),
    MAILSTACK_SES_REGION: config.ses.region,
    MAILSTACK_SES_INBOUND_PREFIX: SES_INBOUND_PREFIX,
    MAILSTACK_SES_REJECTED_PREFIX: SES_REJECTED_PREFIX,
    MAILSTACK_SES_IMPORT_PORT: env.ports.sesImport,
    MAILSTACK_SES_IMPORT_STATE: `${env.paths.state}/${STATE_FILES.sesImport}`,
  };
}

function sesInboundBucket(params: HostParams): string {
  if (params.sesInboundBucket === undefined || params.sesInboundBucket === "") {
    throw new Error("hostFiles: sesInbound is on but HostParams.sesInboundBucket is not given; pass the name of the bucket SES stores inbound mail in");
  }
  return params.sesInboundBucket;
}

/** The scripts run by a timer, each by a service of its own name. */
const TIMERS = [HOST_SCRIPTS.sync, HOST_SCRIPTS.certificate, HOST_SCRIPTS.backup, HOST_SCRIPTS.metrics];

/** The failure alert's instance for the unit that names it in OnFailure. */
const alertUnit = `${HOST_SCRIPTS.alert}@%n.service`;

/** The timers of a config's host: every host's, and the SES importer's with sesInbound. */
const timers = (config: MailConfig): string[] => [...TIMERS, ...(config.ses?.inbound ? [HOST_SCRIPTS.sesImport] : [])];

/** The log shipper's unit, running for the host's life. */
const LOGS_UNIT = `${HOST_SCRIPTS.logs}.service`;

const BOOT_STOP = [UNITS.postfix, UNITS.dovecot, UNITS.rspamd, UNITS.redis, UNITS.postsrsd, UNITS.nginx];
const bootStart = (config: MailConfig): string[] => [UNITS.redis, UNITS.rspamd, UNITS.dovecot, UNITS.postsrsd, UNITS.postfix, UNITS.nginx, UNITS.fail2ban, ...timers(config).map((t) => `${t}.timer`), LOGS_UNIT];

/**
 * The units whose own output (start-up errors, mailstack's scripts) the log shipper sends,
 * besides every line of the mail and auth facilities and the failure tag's. The alert's
 * instances are named after the failed unit, so they are covered by the tag.
 */
const loggedUnits = (config: MailConfig): string[] => [
  UNITS.postfixInstance,
  UNITS.dovecot,
  UNITS.rspamd,
  UNITS.redis,
  UNITS.postsrsd,
  UNITS.nginx,
  UNITS.unbound,
  UNITS.fail2ban,
  ...[HOST_SCRIPTS.bootstrap, HOST_SCRIPTS.dataVolume, ...timers(config), HOST_SCRIPTS.logs].map((s) => `${s}.service`),
];

/** Mounts the data volume at every boot; see {@link onDataVolume}. */
const DATA_VOLUME_UNIT = `${HOST_SCRIPTS.dataVolume}.service`;

/** The units that read or write data on the volume, each with {@link onDataVolume} in its unit or drop-in. */
const DATA_VOLUME_USERS = [UNITS.postfixInstance, UNITS.dovecot, UNITS.redis, `${HOST_SCRIPTS.certificate}.service`, `${HOST_SCRIPTS.backup}.service`];

/**
 * What every unit that reads or writes data on the volume states: it starts only once the
 * volume is mounted, and not at all if it cannot be, rather than on the root volume.
 * RequiresMountsFor= would add nothing: no unit file or fstab line declares these mounts, so
 * systemd has no mount unit to require. `after` lists the unit's other ordering.
 */
const onDataVolume = (...after: string[]): [string, string][] => [
  ["Requires", DATA_VOLUME_UNIT],
  ["After", [...after, DATA_VOLUME_UNIT].join(" ")],
];

/** The marker the bootstrap leaves when it has finished. */
export const bootstrapDone = (env: HostEnv): string => `${env.paths.state}/${STATE_FILES.bootstrapDone}`;

/**
 * The directory's settings for Dovecot and its CA certificate (which Postfix's ldap table
 * names too), with the units that read them; none without `ldap`. Neither holds a secret.
 */
function ldapHostFiles(config: MailConfig, env: HostEnv): [path: string, content: string, reload: string[]][] {
  const conf = dovecotLdapConf(config, env);
  const ca = config.ldap?.caCertificate;
  const files: [string, string, string[]][] = [];
  if (conf !== undefined) files.push([`${env.paths.dovecotConfig}/${DOVECOT_LDAP_CONF}`, conf, [UNITS.dovecot]]);
  if (ca !== undefined) files.push([`${env.paths.dovecotConfig}/${LDAP_CA_FILE}`, ca, [UNITS.dovecot, UNITS.postfixInstance]]);
  return files;
}

/** A systemd unit file from its sections' settings, in order. */
export function unit(sections: Record<string, [string, string][]>): string {
  return (
    generatedHeader() +
    Object.entries(sections)
      .map(([name, entries]) => `[${name}]\n${entries.map(([k, v]) => `${k}=${v}`).join("\n")}\n`)
      .join("\n")
  );
}


/**
 * Every file the host needs for its life: daemon configuration, mailstack's scripts and
 * units: the host bundle ({@link hostBundle}). Nothing here is secret and nothing changes with
 * mailboxes or aliases.
 */
export function hostFiles(config: MailConfig, params: HostParams, env: HostEnv = PRODUCTION_ENV): HostFile[] {
  const p = env.paths;
  const file = (path: string, content: string, options: { mode?: string; owner?: string; reload?: string[]; check?: HostCheck } = {}): HostFile => ({
    path,
    content,
    mode: options.mode ?? "0644",
    owner: options.owner ?? "root:root",
    reload: options.reload ?? [],
    ...(options.check === undefined ? {} : { check: options.check }),
  });
  const script = (name: string, content: string) => file(`${p.sbin}/${name}`, content, { mode: "0755" });
  const systemUnit = (name: string, content: string) => file(`${SYSTEMD}/${name}`, content, { check: "systemd", reload: name.endsWith(".timer") ? [name] : [] });
  // systemd reads a unit's settings only when it starts: a changed drop-in restarts `restart`.
  const dropIn = (unitName: string, content: string, restart = unitName) => file(`${SYSTEMD}/${unitName}.d/mailstack.conf`, content, { reload: [restart] });
  const postfix = { reload: [UNITS.postfixInstance], check: "postfix" as const };
  const files: HostFile[] = [
    file(DEFAULTS_FILE, defaults(config, params, env)),
    // Sourced by the package's launcher at each start; a change restarts the daemon.
    file(POSTSRSD.settings, postsrsdSettings(config), { reload: [UNITS.postsrsd] }),
    file(`${p.postfixConfig}/main.cf`, postfixMainCf(config, env), postfix),
    file(`${p.postfixConfig}/master.cf`, postfixMasterCf(config, env), postfix),
    file(`${p.postfixConfig}/${SUBMISSION_HEADER_CHECKS}`, submissionHeaderChecks(), postfix),
    file(`${p.dovecotConfig}/dovecot.conf`, dovecotConf(config, env), { owner: "root:dovecot", reload: [UNITS.dovecot], check: "dovecot" }),
    ...ldapHostFiles(config, env).map(([path, content, reload]) => file(path, content, { reload })),
    // mailstack-sync compiles them (sievec) before the reload.
    ...Object.entries(sieveScripts()).map(([name, content]) => file(`${p.sieve}/${name}`, content, { reload: [UNITS.dovecot] })),
    ...Object.entries(sievePipePrograms(env)).map(([name, content]) => file(`${p.sievePipe}/${name}`, content, { mode: "0755" })),
    ...Object.entries(rspamdLocalFiles(config, env)).map(([name, content]) => file(`${p.rspamdLocal}/${name}`, content, { reload: [UNITS.rspamd], check: "rspamd" })),
    file(p.rspamdLocalLua, rspamdLocalLua(env, config), { reload: [UNITS.rspamd], check: "rspamd" }),
    file("/etc/unbound/unbound.conf.d/mailstack.conf", unboundConf(env), { reload: [UNITS.unbound], check: "unbound" }),
    file("/etc/systemd/resolved.conf.d/mailstack.conf", `${generatedHeader()}[Resolve]\nDNSStubListener=no\n`, { reload: [UNITS.resolved] }),
    // mailstack-sync copies it to /etc/resolv.conf, as the bootstrap does.
    file(p.resolvConf, `${generatedHeader()}nameserver ${env.resolver}\n# glibc passes DNSSEC's AD bit to Postfix (DANE) only with trust-ad.\noptions edns0 trust-ad\n`),
    file("/etc/nginx/conf.d/mailstack.conf", nginxSite(env), { reload: [UNITS.nginx], check: "nginx" }),
    file("/etc/nftables.conf", nftablesConf(config, env), { mode: "0755", reload: [UNITS.nftables], check: "nftables" }),
    file("/etc/fail2ban/jail.d/mailstack.local", fail2banJails(config, env), { reload: [UNITS.fail2ban], check: "fail2ban" }),
    file(
      "/etc/systemd/journald.conf.d/mailstack.conf",
      `${generatedHeader()}[Journal]\nSystemMaxUse=500M\nSystemKeepFree=1G\nMaxRetentionSec=3month\n`,
      { reload: [UNITS.journald] },
    ),
    // Ubuntu's rsyslog would copy every mail log line into /var/log/mail.log and syslog, which
    // are rotated weekly with no size cap; the journal above keeps them, within its limits.
    // rsyslog reads it at its next start (not every host runs it, so nothing is reloaded).
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
    script(HOST_SCRIPTS.bootstrap, readScript("mailstack-bootstrap.sh")),
    script(HOST_SCRIPTS.dataVolume, readScript("mailstack-data-volume.sh")),
    script(HOST_SCRIPTS.certificate, readScript("mailstack-certificate.sh")),
    script(HOST_SCRIPTS.backup, readScript("mailstack-backup.sh")),
    script(HOST_SCRIPTS.alert, readScript("mailstack-alert.sh")),
    script(HOST_SCRIPTS.restore, `#!/bin/sh\nexec ${p.sbin}/${HOST_SCRIPTS.backup} restore "$@"\n`),
    // By hand, with the settings the timer's runs get from the unit.
    script(HOST_SCRIPTS.rollback, `#!/bin/sh\nset -a\n. ${DEFAULTS_FILE}\nset +a\nexec ${p.sbin}/${HOST_SCRIPTS.sync} --rollback "$@"\n`),
    script(HOST_SCRIPTS.sync, readScript("mailstack-sync.py")),
    script(HOST_SCRIPTS.metrics, readScript("mailstack-metrics.py")),
    // A new shipper takes over from the cursor the running one saved.
    file(`${p.sbin}/${HOST_SCRIPTS.logs}`, readScript("mailstack-logs.py"), { mode: "0755", reload: [LOGS_UNIT] }),
    // What the sync takes of the runtime files whatever their manifest says; read at each run.
    file(p.runtimeTable, runtimeFileTable()),
    // The data volume, mounted at every boot by the script that set it up, not by fstab: in a
    // container systemd ignores fstab's device lines (and there is no udev), and on EC2 a volume
    // attached late would meet fstab's 90 s device timeout and nofail instead of the script's
    // wait. The bootstrap enables it. (Hosts of versions that wrote fstab lines kept them on a
    // root volume that no replacement instance has.)
    systemUnit(
      DATA_VOLUME_UNIT,
      unit({
        Unit: [["Description", "Mount the mail data volume"], ["After", "local-fs.target"], ["Before", DATA_VOLUME_USERS.join(" ")]],
        Service: [
          ["Type", "oneshot"],
          ["RemainAfterExit", "yes"],
          ["EnvironmentFile", DEFAULTS_FILE],
          ["ExecStart", `${p.sbin}/${HOST_SCRIPTS.dataVolume}`],
          // The script waits up to 5 minutes for the device; this only ends a hung step.
          ["TimeoutStartSec", "10min"],
        ],
        Install: [["WantedBy", "multi-user.target"]],
      }),
    ),
    systemUnit(
      `${HOST_SCRIPTS.sync}.service`,
      unit({
        Unit: [["Description", "Apply a new host bundle; install users, aliases and keys"], ["After", "network-online.target"], ["Wants", "network-online.target"], ["OnFailure", alertUnit]],
        Service: [["Type", "oneshot"], ["EnvironmentFile", DEFAULTS_FILE], ["ExecStart", `${p.sbin}/${HOST_SCRIPTS.sync}`], ["SuccessExitStatus", "75"]],
      }),
    ),
    systemUnit(
      `${HOST_SCRIPTS.sync}.timer`,
      unit({
        Unit: [["Description", "Apply host and mailbox changes every two minutes"]],
        Timer: [["OnBootSec", "2min"], ["OnUnitActiveSec", "2min"], ["RandomizedDelaySec", "20s"]],
        Install: [["WantedBy", "timers.target"]],
      }),
    ),
    systemUnit(
      `${HOST_SCRIPTS.certificate}.service`,
      unit({
        // certbot's /etc/letsencrypt is on the data volume.
        Unit: [["Description", "Obtain or renew the host's Let's Encrypt certificate"], ["Wants", "network-online.target"], ...onDataVolume("network-online.target"), ["OnFailure", alertUnit]],
        Service: [["Type", "oneshot"], ["EnvironmentFile", DEFAULTS_FILE], ["ExecStart", `${p.sbin}/${HOST_SCRIPTS.certificate}`]],
      }),
    ),
    systemUnit(
      `${HOST_SCRIPTS.certificate}.timer`,
      unit({
        Unit: [["Description", "Check the certificate's expiry, names and key; retry a failed request"]],
        Timer: [["OnBootSec", "1min"], ["OnUnitActiveSec", "15min"]],
        Install: [["WantedBy", "timers.target"]],
      }),
    ),
    systemUnit(
      `${HOST_SCRIPTS.backup}.service`,
      unit({
        Unit: [
          ["Description", "Back up mail with restic"],
          ["Wants", "network-online.target"],
          // Never back up (and then prune by) an empty maildir on the root volume.
          ...onDataVolume("network-online.target"),
          // Besides the status file: the postmaster is mailed, and the journal counts it.
          ["OnFailure", alertUnit],
        ],
        Service: [["Type", "oneshot"], ["EnvironmentFile", DEFAULTS_FILE], ["ExecStart", `${p.sbin}/${HOST_SCRIPTS.backup}`], ["IOSchedulingClass", "idle"]],
      }),
    ),
    systemUnit(
      `${HOST_SCRIPTS.metrics}.service`,
      unit({
        Unit: [
          ["Description", "Push the host's metrics to CloudWatch and its health to SSM"],
          ["Wants", "network-online.target"],
          // Ordered only: with the volume missing it still reports, and the numbers show it.
          ["After", `network-online.target ${DATA_VOLUME_UNIT}`],
          ["OnFailure", alertUnit],
        ],
        // 75: CloudWatch or SSM unreachable; the next run reports afresh, and the gap shows in the graphs.
        Service: [["Type", "oneshot"], ["EnvironmentFile", DEFAULTS_FILE], ["ExecStart", `${p.sbin}/${HOST_SCRIPTS.metrics}`], ["SuccessExitStatus", "75"]],
      }),
    ),
    systemUnit(
      `${HOST_SCRIPTS.metrics}.timer`,
      unit({
        Unit: [["Description", "Report the host's metrics every five minutes"]],
        // On the clock, so every 5-minute period of an alarm holds exactly one data point.
        Timer: [["OnCalendar", "*:0/5:30"], ["AccuracySec", "5s"]],
        Install: [["WantedBy", "timers.target"]],
      }),
    ),
    // The safety net's importer (sesInbound): mail SES kept while the host was away.
    ...(config.ses?.inbound
      ? [
          script(HOST_SCRIPTS.sesImport, readScript("mailstack-ses-import.py")),
          systemUnit(`${HOST_SCRIPTS.sesImport}.service`, sesImportService(env)),
          systemUnit(
            `${HOST_SCRIPTS.sesImport}.timer`,
            unit({
              Unit: [["Description", "Import the mail SES kept, soon after a boot and every five minutes"]],
              Timer: [["OnBootSec", "2min"], ["OnUnitActiveSec", "5min"]],
              Install: [["WantedBy", "timers.target"]],
            }),
          ),
        ]
      : []),
    file(
      `${SYSTEMD}/${LOGS_UNIT}`,
      unit({
        Unit: [["Description", "Ship the journal's mail, auth and mailstack lines to CloudWatch Logs"], ["Wants", "network-online.target"], ["After", "network-online.target"], ["OnFailure", alertUnit]],
        // It waits out CloudWatch's outages itself; a restart is only for a crash.
        Service: [["Type", "simple"], ["EnvironmentFile", DEFAULTS_FILE], ["ExecStart", `${p.sbin}/${HOST_SCRIPTS.logs} --unit %n`], ["Restart", "always"], ["RestartSec", "30s"]],
        Install: [["WantedBy", "multi-user.target"]],
      }),
      { check: "systemd", reload: [LOGS_UNIT] },
    ),
    // The unit a failing unit starts with its own name (%n, the instance %i here).
    systemUnit(
      `${HOST_SCRIPTS.alert}@.service`,
      unit({
        Unit: [["Description", "Tell the postmaster that %i failed"]],
        Service: [["Type", "oneshot"], ["EnvironmentFile", DEFAULTS_FILE], ["ExecStart", `${p.sbin}/${HOST_SCRIPTS.alert} %i`]],
      }),
    ),
    systemUnit(
      `${HOST_SCRIPTS.backup}.timer`,
      unit({
        Unit: [["Description", "Back up mail"]],
        Timer: [["OnCalendar", config.backupSchedule], ["RandomizedDelaySec", "30min"], ["Persistent", "true"]],
        Install: [["WantedBy", "timers.target"]],
      }),
    ),
    // The template: Ubuntu's postfix.service starts the instance postfix@-.service.
    // Postfix: the queue and maildirs; Dovecot: the maildirs and its sockets in the queue; Redis: its data.
    // PostSRSd before Postfix: with forwarding, cleanup and smtpd defer mail while its tables are down.
    dropIn("postfix@.service", unit({ Unit: [["Wants", `${UNITS.unbound} ${UNITS.postsrsd}`], ...onDataVolume(UNITS.unbound, UNITS.postsrsd)] }), UNITS.postfixInstance),
    dropIn(UNITS.dovecot, unit({ Unit: onDataVolume() })),
    dropIn(
      UNITS.redis,
      unit({
        Unit: onDataVolume(),
        Service: [
          ["ExecStartPre", socketDirCommand(p.redisSocket, "redis", "_rspamd")],
          // Debian's command line, and the listener after the config file, which it overrides.
          ["ExecStart", ""],
          ["ExecStart", `/usr/bin/redis-server /etc/redis/redis.conf --supervised systemd --daemonize no ${redisListenArgs(env).join(" ")}`],
        ],
      }),
    ),
    dropIn(
      UNITS.rspamd,
      unit({
        Unit: [["Wants", `${UNITS.redis} ${UNITS.unbound}`], ["After", `${UNITS.redis} ${UNITS.unbound}`]],
        Service: [["ExecStartPre", socketDirCommand(p.rspamdMilterSocket, "_rspamd", "postfix")]],
      }),
    ),
  ];
  return files;
}

/**
 * The SES importer's service: a oneshot run of the script. A run that leaves mail in S3 after
 * Postfix's temporary refusals (greylisting) exits 75, no failure: the next run tries again.
 * One that cannot reach Postfix or S3 fails, and the postmaster is told (OnFailure), at most
 * once a day.
 */
function sesImportService(env: HostEnv): string {
  return unit({
    Unit: [
      ["Description", "Hand the mail SES kept in S3 while the host was away to Postfix"],
      ["Wants", "network-online.target"],
      // Ordered only: with Postfix down the run fails and leaves every message where it is.
      ["After", `network-online.target ${UNITS.postfixInstance}`],
      ["OnFailure", alertUnit],
    ],
    Service: [
      ["Type", "oneshot"],
      ["EnvironmentFile", DEFAULTS_FILE],
      ["ExecStart", `${env.paths.sbin}/${HOST_SCRIPTS.sesImport}`],
      ["SuccessExitStatus", "75"],
      // It parses headers written by strangers: it reads S3, talks SMTP to loopback, and
      // writes its record in the state directory, and may do nothing else.
      ["UMask", "0077"],
      ["NoNewPrivileges", "yes"],
      ["CapabilityBoundingSet", ""],
      ["ProtectSystem", "strict"],
      ["ReadWritePaths", env.paths.state],
      ["ProtectHome", "yes"],
      ["PrivateTmp", "yes"],
      ["PrivateDevices", "yes"],
      ["ProtectKernelTunables", "yes"],
      ["ProtectKernelModules", "yes"],
      ["ProtectKernelLogs", "yes"],
      ["ProtectControlGroups", "yes"],
      ["ProtectClock", "yes"],
      ["ProtectHostname", "yes"],
      ["RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX AF_NETLINK"],
      ["RestrictNamespaces", "yes"],
      ["RestrictRealtime", "yes"],
      ["RestrictSUIDSGID", "yes"],
      ["LockPersonality", "yes"],
      ["SystemCallArchitectures", "native"],
      ["SystemCallFilter", "@system-service"],
    ],
  });
}

/**
 * Ubuntu packages the host installs: the same for every config, so that no setting ties the
 * user data (and so the instance) to itself. dovecot-pop3d serves nothing unless `pop3` puts
 * pop3 in dovecot.conf's protocols.
 */
export function hostPackages(): string[] {
  return [
    "postfix",
    // PLAIN and LOGIN for Postfix's SASL client, which authenticates to SES (sesOutbound).
    "libsasl2-modules",
    "dovecot-imapd",
    "dovecot-lmtpd",
    // Users from an LDAP directory (`ldap`); installed whatever the config, as every package is.
    "dovecot-ldap",
    "postfix-ldap",
    "dovecot-sieve",
    "dovecot-pop3d",
    "rspamd",
    "redis-server",
    // SRS for forwarded mail (see POSTSRSD); it generates its secret on the host.
    "postsrsd",
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
