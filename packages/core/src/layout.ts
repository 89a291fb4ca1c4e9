/**
 * Where things live on the mail host. Renderers take a HostEnv so that tests can lay the
 * same files into a temporary root with loopback ports; production uses PRODUCTION_ENV.
 */
export interface HostEnv {
  /** The ports the daemons listen on; tests move them to unprivileged ones. */
  ports: {
    /** SMTP from other servers, 25. */
    smtp: number;
    /** Submission with STARTTLS, 587. */
    submission: number;
    /** Submission over TLS, 465. */
    submissions: number;
    /** IMAP over TLS, 993. */
    imaps: number;
    /** POP3 over TLS, 995 (only with `pop3`). */
    pop3s: number;
    /** The SES importer's smtpd on 127.0.0.1, 10026 (only with `sesInbound`). */
    sesImport: number;
  };
  /** Absolute paths of everything mailstack writes or reads on the host. */
  paths: {
    /** Files synced from SSM Parameter Store (users, maps, DKIM keys). */
    runtime: string;
    /**
     * The table of the runtime files the sync may install, with each one's mode, owner, units
     * and grammar: part of the host bundle, so no manifest can name another file or widen one.
     */
    runtimeTable: string;
    /** TLS certificate chain used by Postfix, Dovecot and nginx. */
    tlsCert: string;
    /** The private key of that certificate. */
    tlsKey: string;
    /**
     * The last certificate Let's Encrypt issued, on the data volume (below the bind mount of
     * /etc/letsencrypt), so a replacement instance serves it without asking again.
     */
    certificates: string;
    /** Mount point of the mail data volume. */
    data: string;
    /** Maildirs, one per mailbox below <domain>/<local>. */
    vmail: string;
    /** Postfix's configuration directory (main.cf, master.cf). */
    postfixConfig: string;
    /** Postfix's queue of accepted mail, on the data volume. */
    postfixQueue: string;
    /** Postfix's data_directory (postscreen's and the TLS session caches). */
    postfixData: string;
    /** Dovecot's configuration directory. */
    dovecotConfig: string;
    /** Global Sieve scripts (spam to Junk, learning), compiled on the host by `sievec`. */
    sieve: string;
    /** Programs the Sieve scripts may pipe to. */
    sievePipe: string;
    /** Dovecot's runtime directory (sockets). */
    dovecotBase: string;
    /** rspamd's local.d overrides. */
    rspamdLocal: string;
    /** Lua rules of the site, which rspamd runs after its own. */
    rspamdLocalLua: string;
    /**
     * The milter socket Postfix reaches rspamd on, alone in a directory only rspamd and
     * Postfix's group may enter: rspamd runs as _rspamd and cannot give a socket another group.
     */
    rspamdMilterSocket: string;
    /** rspamd's controller (learning, statistics): a socket only _rspamd and root may open. */
    rspamdControllerSocket: string;
    /** Redis's socket, alone in a directory only Redis and _rspamd may enter; Redis has no TCP port. */
    redisSocket: string;
    /** Redis's data (rspamd's Bayes database), on the data volume. */
    redis: string;
    /** certbot's directory: the ACME account and `certificates` below it, on the data volume. */
    letsencrypt: string;
    /** The resolver configuration the bootstrap installs as /etc/resolv.conf (the local unbound). */
    resolvConf: string;
    /** State of mailstack's own scripts (see {@link STATE_FILES}). */
    state: string;
    /** Where mailstack's scripts are installed (see {@link HOST_SCRIPTS}). */
    sbin: string;
  };
  /** The uid and gid mail is stored under (the `vmail` user). */
  vmail: {
    /** The vmail user's uid. */
    uid: number;
    /** The vmail group's gid. */
    gid: number;
  };
  /** The validating resolver the daemons query. */
  resolver: string;
}

/** Where things live on a real mail host. */
export const PRODUCTION_ENV: HostEnv = {
  ports: { smtp: 25, submission: 587, submissions: 465, imaps: 993, pop3s: 995, sesImport: 10026 },
  paths: {
    runtime: "/etc/mailstack",
    runtimeTable: "/usr/local/share/mailstack/runtime-files.json",
    tlsCert: "/etc/mailstack/tls/fullchain.pem",
    tlsKey: "/etc/mailstack/tls/privkey.pem",
    certificates: "/etc/letsencrypt/mailstack",
    data: "/srv/mailstack",
    vmail: "/var/vmail",
    postfixConfig: "/etc/postfix",
    postfixQueue: "/var/spool/postfix",
    postfixData: "/var/lib/postfix",
    dovecotConfig: "/etc/dovecot",
    sieve: "/etc/dovecot/sieve",
    sievePipe: "/etc/dovecot/sieve-pipe",
    dovecotBase: "/run/dovecot",
    rspamdLocal: "/etc/rspamd/local.d",
    rspamdLocalLua: "/etc/rspamd/rspamd.local.lua",
    rspamdMilterSocket: "/run/rspamd/milter/milter.sock",
    rspamdControllerSocket: "/run/rspamd/controller.sock",
    redisSocket: "/run/redis/rspamd/redis.sock",
    redis: "/var/lib/redis",
    letsencrypt: "/etc/letsencrypt",
    resolvConf: "/etc/mailstack-resolv.conf",
    state: "/var/lib/mailstack",
    sbin: "/usr/local/sbin",
  },
  vmail: { uid: 5000, gid: 5000 },
  resolver: "127.0.0.1",
};

/**
 * Directories on the data volume and the host paths they are bind-mounted onto: everything
 * that must survive replacing the instance (mail, the queue of accepted mail, certificates
 * and the ACME account, the Bayes database).
 */
export const DATA_VOLUME_BINDS: {
  /** The directory on the volume. */
  dir: string;
  /** The host path it is bind-mounted onto. */
  target: string;
}[] = [
  { dir: "vmail", target: PRODUCTION_ENV.paths.vmail },
  { dir: "postfix-spool", target: PRODUCTION_ENV.paths.postfixQueue },
  { dir: "letsencrypt", target: PRODUCTION_ENV.paths.letsencrypt },
  { dir: "redis", target: PRODUCTION_ENV.paths.redis },
];

/** Label given to the data volume's filesystem when mailstack creates it. */
export const DATA_VOLUME_LABEL = "mailstack-data";

/** The device name the data volume is attached as (the instance's block device mapping). */
export const DATA_VOLUME_DEVICE = "/dev/sdf";

/**
 * Where a Xen instance type (t2) shows the data volume: Xen names `sdX` devices `xvdX`. Nitro
 * types show it under /dev/disk/by-id by its volume id instead.
 */
export const DATA_VOLUME_XEN_DEVICE = DATA_VOLUME_DEVICE.replace(/^\/dev\/sd/, "/dev/xvd");

/**
 * The file every script and mailstack unit reads its settings from (systemd's
 * `EnvironmentFile`). The one path the shell scripts state themselves: run by cloud-init or by
 * hand, they have no other way to find the rest.
 */
export const DEFAULTS_FILE = "/etc/default/mailstack";

/**
 * mailstack's programs, installed in `paths.sbin`. Those run by a timer have a `.service` and
 * a `.timer` unit of the same name.
 */
export const HOST_SCRIPTS = {
  /**
   * The one program the user data carries: fetches the host bundle that SSM names, checks its
   * hash, installs it, then runs the bundle's bootstrap. Run by the `.service` unit named after
   * {@link HOST_SCRIPTS.bootstrap}, which cloud-init enables and starts and systemd retries
   * until it succeeds; then it is done for the instance's life.
   */
  firstBoot: "mailstack-first-boot",
  /** First-boot setup after the bundle is installed (volume, resolver, daemons, timers). */
  bootstrap: "mailstack-bootstrap",
  /**
   * Mounts the data volume and binds its directories, run at every boot by a `.service` unit of
   * the same name that the bootstrap enables.
   */
  dataVolume: "mailstack-data-volume",
  /** Obtains and renews the certificate (timer). */
  certificate: "mailstack-certificate",
  /** restic backup (timer). */
  backup: "mailstack-backup",
  /** Restores from the backup. */
  restore: "mailstack-restore",
  /** Returns to the host bundle that ran before the current one (by hand). */
  rollback: "mailstack-rollback",
  /** Applies a new host bundle and installs the runtime files from SSM (timer). */
  sync: "mailstack-sync",
  /** Pushes the host's metrics to CloudWatch and its health to SSM (timer; see monitoring.ts). */
  metrics: "mailstack-metrics",
  /** Ships the journal's mail, auth and mailstack lines to CloudWatch Logs (a long-running service). */
  logs: "mailstack-logs",
  /**
   * Tells the postmaster that a unit failed, with its last journal lines, and logs a line
   * tagged {@link FAILURE_TAG}; run by the template unit `<name>@.service`, which a unit names
   * in its `OnFailure=`.
   */
  alert: "mailstack-alert",
  /**
   * Hands the mail SES kept in S3 while the host was away (sesInbound) to Postfix, exactly once
   * per object (timer; only with sesInbound).
   */
  sesImport: "mailstack-ses-import",
} as const;

/**
 * The journal's tag (SYSLOG_IDENTIFIER) of the one line logged for each failure of a unit that
 * has {@link HOST_SCRIPTS}.alert tell the postmaster: monitoring counts them with
 * `journalctl -t mailstack-failure`.
 */
export const FAILURE_TAG = "mailstack-failure";

/** The program system mail goes through: Postfix's sendmail, which delivers mail for root to the postmaster. */
export const SENDMAIL = "/usr/sbin/sendmail";

/**
 * PostSRSd as Debian and Ubuntu package it (1.10 in Debian 12, Debian 13 and Ubuntu 24.04):
 * two TCP lookup tables in Postfix's tcp_table protocol, forward (sign a sender into an SRS
 * address of ours) and reverse (check and undo one), on loopback. Version 1 has no unix
 * socket, so the host firewall lets only Postfix's processes reach the ports (nftablesConf).
 * Its unit's launcher reads `settings`; the package's postinst generates `secret` on the
 * host, and its AppArmor profile (enforced on Ubuntu) allows exactly that path and `chroot`.
 */
export const POSTSRSD = {
  /** The launcher's settings (sourced shell), rendered by mailstack. */
  settings: "/etc/default/postsrsd",
  /** The signing secret, made by the package on the host; never part of what mailstack ships. */
  secret: "/etc/postsrsd.secret",
  /** Where the daemon jails itself once it has read the secret. */
  chroot: "/var/lib/postsrsd",
  /** The unprivileged user the package creates and the daemon switches to. */
  user: "postsrsd",
  /** The address both tables listen on. */
  listen: "127.0.0.1",
  /** Forward SRS: sender_canonical_maps. */
  forwardPort: 10001,
  /** Reverse SRS: recipient_canonical_maps (and the LMTP client's generic map). */
  reversePort: 10002,
} as const;

/** Files mailstack's scripts keep in `paths.state`. */
export const STATE_FILES = {
  /** mailstack-sync's record of the files it installed and the units that read them. */
  sync: "sync-state.json",
  /** The host bundles kept for a rollback (the one in force and the one before), by hash. */
  bundles: "host-bundles",
  /** Which bundle is in force, the one before it, the hashes refused and the last status reported. */
  bundleState: "bundle-state.json",
  /** The last backup's result, for monitoring. */
  backupStatus: "backup-status.json",
  /** restic's cache. */
  resticCache: "restic-cache",
  /** The journal cursor of the last entry CloudWatch Logs accepted from the log shipper. */
  logCursor: "log-cursor",
  /** The S3 objects the SES importer handed to Postfix (or refused) and has yet to see removed. */
  sesImport: "ses-import.json",
  /**
   * Written by the bootstrap as its last step: its unit does not run again on this instance.
   * On the root volume, so a replacement instance bootstraps afresh.
   */
  bootstrapDone: "bootstrap-done",
} as const;

/**
 * Debian's policy hook, asked by `invoke-rc.d` and `deb-systemd-invoke` before package scripts
 * start a daemon; cloud-init writes one that refuses (exit 101) for the first boot's package
 * install, and the bootstrap removes it first thing.
 */
export const POLICY_RC_D = "/usr/sbin/policy-rc.d";

/** systemd units of the packages the host runs, as mailstack starts, stops and reloads them. */
export const UNITS = {
  /** Postfix (Ubuntu's wrapper of the `postfix@-` instance). */
  postfix: "postfix.service",
  /** The Postfix instance that runs the daemons; it fails, and is reset, apart from the wrapper. */
  postfixInstance: "postfix@-.service",
  /** Dovecot. */
  dovecot: "dovecot.service",
  /** rspamd. */
  rspamd: "rspamd.service",
  /** Redis, rspamd's Bayes store. */
  redis: "redis-server.service",
  /** PostSRSd, the SRS lookup tables Postfix uses for forwarded mail (see {@link POSTSRSD}). */
  postsrsd: "postsrsd.service",
  /** nginx: MTA-STS policy and client autoconfiguration. */
  nginx: "nginx.service",
  /** fail2ban. */
  fail2ban: "fail2ban.service",
  /** unbound, the local validating resolver. */
  unbound: "unbound.service",
  /** Ubuntu's hook that would point resolv.conf at unbound itself; mailstack writes resolv.conf. */
  unboundResolvconf: "unbound-resolvconf.service",
  /** systemd-resolved, whose stub listener mailstack turns off. */
  resolved: "systemd-resolved.service",
  /** nftables, loading /etc/nftables.conf. */
  nftables: "nftables.service",
  /** The journal, which mailstack limits in size and age. */
  journald: "systemd-journald.service",
} as const;

/** Below the stack's SSM path, the one prefix the host's role may write: its reports. */
export const HOST_STATUS_PREFIX = "status";

/**
 * Where the host finds its bundle: an SSM parameter below the stack's path (the pointer), and
 * where it reports what it runs, below the same path, the one place its role may write.
 */
export const HOST_BUNDLE_PARAMETERS = {
  /** The pointer: `{bucket, key, sha256, endpoint}` of the bundle to run. */
  pointer: "host-bundle",
  /** The host's report: the hash it runs and the result of its last attempt. */
  status: `${HOST_STATUS_PREFIX}/host-bundle`,
} as const;

/**
 * Where a stack keeps its host's objects in the backup bucket: below `host`, then the stack's
 * SSM path, so that stacks sharing an existing bucket never share (or may read) each other's.
 * The host's role may only read there.
 */
export function hostObjectsPrefix(ssmPath: string): string {
  return `host${ssmPath}`;
}

/** The objects below {@link hostObjectsPrefix}. */
export const HOST_OBJECTS = {
  /** The host bundles, each named by its SHA-256: `bundles/<sha256>.json`. */
  bundles: "bundles",
  /** The runtime files that are not keys, in one document (see {@link runtimeDelivery}). */
  runtime: "runtime.json",
} as const;

/** Header placed on every rendered file. */
export function generatedHeader(comment = "#"): string {
  return `${comment} Generated by mailstack. Local edits are replaced by the next host bundle;\n${comment} change the stack's configuration instead.\n`;
}
