import type { Architecture } from "../instance-types";
import type { AlarmSettings } from "../monitoring";

/**
 * What a user writes: the Pulumi stack config of the reference program, the `--config` file
 * of `mailstack plan`, and the args of the `MailStack` component all have this shape, so a
 * field path in an error is the path the user typed.
 *
 * Default values live in one place, the field table (`DEFAULTS` lists them); each `@default`
 * below says what leaving the field out does.
 *
 * `password` and `passwordHash` are usually Pulumi secrets. The core checks their presence
 * here and their value only when it is a plain string; the component checks secret values
 * with {@link checkPassword} / {@link checkPasswordHash} once they resolve.
 */
export interface MailConfigInput {
  /** Primary mail domain, e.g. example.com. IDNs are accepted and stored as xn-- names. */
  domain: string;
  /**
   * Further domains this server receives and sends mail for.
   * @default None: only `domain`.
   */
  extraDomains?: string[];
  /**
   * Mail host name. Must lie within one of the domains.
   * @default `mail.<domain>`.
   */
  hostname?: string;
  /** The mailboxes, at least one; the first is the postmaster by default. */
  mailboxes: MailboxInput[];
  /**
   * Addresses that deliver to mailboxes, to other aliases or (with allowExternalForwarding) to
   * outside addresses. No catch-all (`@domain`) here: see {@link MailConfigInput.catchAll}.
   * @default None: only the mailboxes' own aliases and the generated postmaster@/abuse@.
   */
  aliases?: AliasInput[];
  /**
   * Catch-alls by hosted domain, e.g. `{ "example.com": "alice@example.com" }`: mail to an
   * address of that domain that nothing else receives at goes to the given mailbox or alias
   * (hosted here, and reaching an enabled mailbox). Exact addresses (mailboxes, aliases,
   * postmaster@, abuse@) still win. The catch-all's owner may not send as the addresses it
   * collects.
   * @default None: mail to an unknown address is refused (550 5.1.1), as a catch-all collects
   * spam for every guessed name.
   */
  catchAll?: Record<string, string>;
  /**
   * Allow aliases to forward to domains this server does not host.
   * @default Refused: every alias target must be hosted here.
   */
  allowExternalForwarding?: boolean;
  /**
   * Where postmaster@ of every domain goes.
   * @default The first mailbox.
   */
  postmaster?: string;
  /**
   * Where abuse@ of every domain goes.
   * @default The postmaster.
   */
  abuse?: string;
  /**
   * DMARC policy stage: the `p=` of every domain's `_dmarc` record.
   * @default Quarantine: failing mail goes to spam folders, none is refused outright.
   */
  dmarcPolicy?: "none" | "quarantine" | "reject";
  /**
   * Mailbox or alias that receives DMARC aggregate reports.
   * @default The postmaster.
   */
  dmarcReports?: string;
  /**
   * Require strict (exact-domain) SPF and DKIM alignment.
   * @default Relaxed alignment: subdomains of a domain align with it.
   */
  dmarcStrictAlignment?: boolean;
  /**
   * TLS on port 25 from other servers: opportunistic or required.
   * @default Opportunistic: STARTTLS offered, mail from servers without TLS still accepted.
   */
  inboundTls?: "opportunistic" | "required";
  /**
   * TLS to other servers: dane (with the host's validating resolver), opportunistic or required.
   * @default DANE where the recipient publishes TLSA records, opportunistic TLS elsewhere.
   */
  outboundTls?: "dane" | "opportunistic" | "required";
  /**
   * Lowest TLS version on port 25.
   * @default TLS 1.2, which every current mail server speaks.
   */
  inboundTlsMinVersion?: "TLSv1.2" | "TLSv1.3";
  /**
   * CIDRs allowed to reach SSH (port 22).
   * @default None: no SSH rule at all; use SSM Session Manager.
   */
  adminCidrs?: string[];
  /**
   * EC2 instance type, `family.size`.
   * @default A 2 GiB Graviton (arm64) burstable instance, enough for one small organisation.
   */
  instanceType?: string;
  /**
   * CPU architecture, only needed for families mailstack does not know.
   * @default Derived from the instance family.
   */
  architecture?: Architecture;
  /**
   * Root volume size in GiB.
   * @default Room for Ubuntu, the mail software and the size-capped journal.
   */
  rootVolumeGiB?: number;
  /**
   * Mail data volume size in GiB (mail, queue, certificates, spam-filter data).
   * @default Room for a few users' mail; the volume can grow later, never shrink.
   */
  dataVolumeGiB?: number;
  /**
   * Offer POP3S on port 995.
   * @default Off: IMAPS only.
   */
  pop3?: boolean;
  /**
   * Largest message accepted, in MiB.
   * @default Room for large attachments, as the big mail providers allow.
   */
  messageSizeLimitMiB?: number;
  /**
   * DKIM selector that signs outgoing mail.
   * @default `mail`: the key is published at `mail._domainkey.<domain>`.
   */
  dkimSelector?: string;
  /**
   * Rotation, step 1: a new key published under this selector beside the signing one, not yet
   * signing. See docs/dns.md for the three-step rotation.
   * @default None: only the signing key is published.
   */
  dkimNextSelector?: string;
  /**
   * Rotation, step 3: the key that signed before `dkimSelector`, still published so that mail
   * signed with it in transit keeps verifying.
   * @default None: remove it to retire that key.
   */
  dkimPreviousSelector?: string;
  /**
   * Further MX hosts you run elsewhere (backup MX), tried after this one.
   * @default None: this host is the only MX.
   */
  secondaryMx?: SecondaryMxInput[];
  /**
   * Domains whose SPF record also authorises senders for the mail domains, e.g. amazonses.com.
   * @default None: only the MX hosts may send (`v=spf1 mx -all`).
   */
  spfInclude?: string[];
  /**
   * MTA-STS policy mode served at https://mta-sts.<domain>/.well-known/mta-sts.txt.
   * `testing` reports failures (TLS-RPT) without refusing; `none` withdraws the policy.
   * @default Enforce: senders that support MTA-STS deliver only over TLS to a valid
   * certificate of the MX host.
   */
  mtaSts?: "enforce" | "testing" | "none";
  /**
   * Certificate authorities allowed to issue for the mail host's names (CAA); an empty list
   * publishes no CAA record.
   * @default Let's Encrypt alone, the CA the host's certificate comes from.
   */
  caaIssuers?: string[];
  /**
   * Domains (or subdomains) that never send or receive mail: each gets a null MX, `v=spf1 -all`
   * and DMARC p=reject, so nobody can spoof them.
   * @default None.
   */
  nonMailDomains?: string[];
  /**
   * Sign the Cloudflare zones with DNSSEC and publish a TLSA (DANE) record for port 25. The
   * DS record must then be added at the registrar (Cloudflare shows it).
   * @default Off: the zones stay as they are.
   */
  dnssec?: boolean;
  /**
   * Extra TXT values by domain, such as `google-site-verification=…` for Google Postmaster
   * Tools.
   * @default None.
   */
  verificationRecords?: Record<string, string[]>;
  /**
   * DNS provider that publishes the records: cloudflare or route53.
   * @default Cloudflare (component MailDns).
   */
  dnsProvider?: "cloudflare" | "route53";
  /**
   * Route 53 hosted zone ids by domain.
   * @default Every zone is looked up by name.
   */
  route53ZoneIds?: Record<string, string>;
  /**
   * An existing S3 bucket for the backups, by name (`my-mail-backups`) or ARN
   * (`arn:aws:s3:::my-mail-backups`), in the stack's region.
   * @default A new bucket, versioned, encrypted, closed to the public, TLS only, with a
   * lifecycle by backupRetentionDays. With an existing bucket mailstack creates no bucket and
   * changes none of its settings: versioning (without it restic's prune deletes old data for
   * good), encryption, lifecycle, public-access block, bucket policy, Object Lock and
   * replication are the operator's, so backupReplicaRegion, backupObjectLock and a
   * backupRetentionDays other than the default are refused. The host's role still gets only
   * `restic/` in that bucket; give backupKmsKeyArn if the bucket's default encryption uses a
   * customer-managed key, so the role may use it.
   */
  backupBucket?: string;
  /**
   * Days a replaced or deleted backup object version is kept.
   * @default About three months: a compromised or misconfigured host cannot erase history
   * younger than that.
   */
  backupRetentionDays?: number;
  /**
   * S3 Object Lock default retention for every new object version in the backup bucket (and
   * its replica): stops anyone in the AWS account (GOVERNANCE: anyone without
   * s3:BypassGovernanceRetention; COMPLIANCE: even the root user) from deleting a version
   * younger than `days`. Once enabled, S3 never lets it be turned off.
   * @default None: versioning and the host's role already keep a compromised host from
   * erasing history.
   */
  backupObjectLock?: BackupObjectLockInput;
  /**
   * Region of a second bucket that S3 replicates every backup object to, e.g. eu-central-1.
   * Must differ from the stack's region.
   * @default None: one bucket, in the stack's region.
   */
  backupReplicaRegion?: string;
  /**
   * ARN of a customer-managed KMS key (in the stack's region) that encrypts the backup bucket.
   * @default The account's AWS-managed `aws/s3` key, which needs no key policy and costs
   * nothing, but whose use cannot be restricted or audited per key.
   */
  backupKmsKeyArn?: string;
  /**
   * Daily EBS snapshots of the data volume kept, by count.
   * @default A week of whole-volume restore points beside the file-level backups.
   */
  snapshotRetentionDays?: number;
  /**
   * When the host backs up mail and its configuration with restic, as a systemd OnCalendar
   * expression (UTC). Each run starts up to 30 minutes later at random; a run missed while the
   * host was down starts at boot. Changing it replaces the instance: the timer is part of the
   * user data.
   * @default Daily at 02:00 UTC.
   */
  backupSchedule?: string;
  /**
   * How many snapshots restic keeps (`forget --keep-daily/-weekly/-monthly`, then `--prune`).
   * A changed policy reaches the host through SSM, without replacing it.
   * @default A week of daily, a month of weekly and a year of monthly snapshots.
   */
  backupKeep?: BackupKeep;
  /**
   * What one mailbox may send, so that a stolen password cannot burn the reputation of the
   * host's address: messages and recipients per hour (rspamd's ratelimit, per login; past
   * them a message gets a 4xx and is not queued) and recipients per message (Postfix, on the
   * submission ports). A limit left out keeps its default. A mailbox's own
   * `sendingLimits` (see a mailbox's settings) replaces the hourly ones for its login.
   * @default 100 messages and 300 recipients an hour, 100 recipients a message.
   */
  sendingLimits?: SendingLimits;
  /**
   * Address (preferably at another provider) that receives alarms when the host fails its
   * EC2 status checks (which also trigger automatic recovery or reboot), and the monitoring
   * alarms on the host's own figures (`MONITORING_ALARMS` of @mailstack/core, changed with `alarms`).
   * @default No alarms (the log group, its filters and the dashboard are made all the same).
   */
  alertEmail?: string;
  /**
   * Days the host's log group (the journal's mail, auth and mailstack lines, in CloudWatch
   * Logs) keeps its events: one of the periods CloudWatch accepts (`LOG_RETENTION_DAYS` of @mailstack/core).
   * @default A month: enough to look back at an incident, little to store.
   */
  logRetentionDays?: number;
  /**
   * Changes to the CloudWatch alarms that alertEmail receives (`MONITORING_ALARMS` of @mailstack/core), by
   * alarm: `false` turns one off, `{ threshold: N }` moves its threshold, e.g.
   * `{ backupAge: { threshold: 50 }, rejectedMail: false }`. Refused without alertEmail, as
   * there are no alarms then.
   * @default Every alarm, at its own threshold.
   */
  alarms?: AlarmSettings;
  /**
   * Minutes `pulumi up` waits at its end until the host reports this deployment's bundle
   * applied and `mailstack check` passes (DNS, reverse DNS, ports, certificate, blocklists),
   * failing the update with the check's table after that long. It runs on the machine that runs
   * Pulumi, needs `@mailstack/cli` installed in the Pulumi project and AWS credentials in the
   * environment; a preview never runs it.
   * @default 0: no wait; `pulumi up` ends when the cloud resources exist.
   */
  waitUntilHealthyMinutes?: number;
  /**
   * Checks the wait of waitUntilHealthyMinutes leaves out, by id or id prefix (`port:25`,
   * `dnsbl`, …; `mailstack check --json` lists the ids), e.g. `port:25` where the machine
   * running Pulumi may not open port 25, as on many home and office networks.
   * @default None: every check.
   */
  healthCheckSkip?: string[];
  /**
   * Send every outgoing message through Amazon SES's SMTP interface (port 587, TLS with a
   * verified certificate, the stack's own SMTP credentials) instead of straight to the
   * recipient's MX. Each mail domain becomes an SES domain identity that signs with the stack's
   * DKIM key (BYODKIM; the host then stops signing itself), with a custom MAIL FROM domain
   * (sesMailFromSubdomain) so SPF aligns too. For accounts whose outbound port 25 is blocked, as
   * on new AWS accounts. A new SES account is in the sandbox: it sends only to verified
   * addresses until production access is granted (the plan's next steps say how).
   * @default false: the host delivers to each recipient's MX itself, on port 25.
   */
  sesOutbound?: boolean;
  /**
   * Amazon SES receiving as a lower-priority MX: while the host is down or answers 4xx, SES
   * accepts mail for the hosted addresses into an encrypted S3 bucket, and the host imports
   * each message through its own filter and delivery when it is back. SES refuses every other
   * address at RCPT. Not with catch-alls or an LDAP directory, whose addresses SES cannot list.
   * @default false: senders queue and retry while the host is away.
   */
  sesInbound?: boolean;
  /**
   * Region of SES for sesOutbound and sesInbound: one with an SMTP endpoint for the first, one
   * that receives mail for the second.
   * @default The stack's region.
   */
  sesRegion?: string;
  /**
   * The label of each mail domain's custom MAIL FROM domain with sesOutbound: bounces and
   * complaints go to `<label>.<domain>`, whose MX and SPF name SES.
   * @default "bounce": `bounce.<domain>`.
   */
  sesMailFromSubdomain?: string;
  /**
   * Existing VPC; requires subnetId.
   * @default The account's default VPC.
   */
  vpcId?: string;
  /**
   * Existing public subnet for the host.
   * @default The default subnet of availabilityZone.
   */
  subnetId?: string;
  /**
   * Availability zone in the default VPC, in the stack's region.
   * @default The region's first zone.
   */
  availabilityZone?: string;
  /**
   * Cloudflare zone ids by domain.
   * @default Every zone is looked up by name.
   */
  cloudflareZoneIds?: Record<string, string>;
  /**
   * Users and passwords from an LDAP directory (OpenLDAP, Active Directory) besides the
   * mailboxes: a directory user logs in with its address and directory password over IMAP,
   * POP3 and submission, and receives mail, without a `mailboxes` entry. See
   * docs/configuration.md, "Users from LDAP or Active Directory".
   * @default None: only the mailboxes log in and receive.
   */
  ldap?: LdapInput;
}

/**
 * A mailbox (a Dovecot user) as written in {@link MailConfigInput.mailboxes}. Give `password` or
 * `passwordHash`, not both.
 */
export interface MailboxInput {
  /** Its e-mail address in a hosted domain, also the IMAP/SMTP login name; the local part is letters, digits, `.`, `_` and `-`. */
  address: string;
  /** Plain password (a secret); hashed with bcrypt by the stack. */
  password?: unknown;
  /** Pre-hashed password with its Dovecot scheme prefix, e.g. from `doveadm pw -s BLF-CRYPT`. */
  passwordHash?: unknown;
  /**
   * Storage quota such as 500M, 5G or unlimited.
   * @default Room for years of ordinary mail, and a full mailbox refuses mail instead of
   * filling the data volume.
   */
  quota?: string;
  /** Further addresses delivered to this mailbox; the mailbox may also send as them. */
  aliases?: string[];
  /**
   * `false` disables the mailbox at once, keeping its stored mail: logins (IMAP, POP3,
   * submission) are refused, open sessions end, and mail to it and to its own aliases is
   * refused at RCPT with `550 5.2.1` and {@link MailboxInput.disabledReply}. `true` again
   * restores it as it was.
   * @default Enabled.
   */
  enabled?: boolean;
  /**
   * The text senders get after `550 5.2.1 <address>: Recipient address rejected:` while the
   * mailbox is disabled, e.g. "Alice has left; write to sales@example.com". 1–200 printable
   * ASCII characters.
   * @default "Mailbox disabled, not accepting messages" (RFC 3463's words for 5.2.1).
   */
  disabledReply?: string;
  /**
   * This login's own hourly sending limits, in place of the stack's
   * {@link MailConfigInput.sendingLimits} (higher for a mailbox that sends newsletters, lower
   * for a shared or exposed one). A limit left out keeps the stack's.
   * @default The stack's sendingLimits.
   */
  sendingLimits?: MailboxSendingLimits;
  /**
   * Named credentials for one mail client each (`phone`, `laptop`), besides the mailbox's
   * password: each revocable on its own by removing it, each optionally limited to some
   * protocols. Removing or changing one ends the mailbox's open sessions. See docs/accounts.md.
   * @default None: only the mailbox's password logs in.
   */
  appPasswords?: AppPasswordInput[];
  /**
   * Refuse the mailbox's own password on IMAP, POP3 and submission: only its app passwords log
   * in, so a password seen or phished elsewhere does not open the mailbox from a mail client.
   * Needs at least one app password.
   * @default Off: the password logs in besides the app passwords.
   */
  requireAppPasswords?: boolean;
}

/** Protocols an app password may log in with; `submission` is SMTP AUTH on 587 and 465. */
export type AppPasswordService = "imap" | "pop3" | "submission";

/** An app password as written in {@link MailboxInput.appPasswords}: exactly one of password and passwordHash. */
export interface AppPasswordInput {
  /** Its name within the mailbox, e.g. `phone`: 1–32 lower-case letters, digits and inner hyphens. */
  name: string;
  /** The app password in plain text (a secret, at least 16 characters); hashed with bcrypt by the stack. */
  password?: unknown;
  /** Pre-hashed, with its Dovecot scheme prefix, as for a mailbox's passwordHash. */
  passwordHash?: unknown;
  /**
   * The protocols it logs in with, e.g. `[submission]` for a scanner that only sends.
   * @default Every protocol the host offers: IMAP, submission, and POP3 when pop3 is on.
   */
  services?: AppPasswordService[];
}

/** A backup MX host you run elsewhere, as written in {@link MailConfigInput.secondaryMx}. */
export interface SecondaryMxInput {
  /** Host name of the other MX server. */
  host: string;
  /**
   * MX preference; must be above this host's.
   * @default 10 more than the one before, in list order.
   */
  priority?: number;
}

/** S3 Object Lock default retention of the backup bucket, as written in {@link MailConfigInput.backupObjectLock}. */
export interface BackupObjectLockInput {
  /** GOVERNANCE: principals with s3:BypassGovernanceRetention may still delete; COMPLIANCE: nobody may. */
  mode: "GOVERNANCE" | "COMPLIANCE";
  /** Days each new object version is locked; at most backupRetentionDays. */
  days: number;
}

/**
 * Snapshots restic keeps: the last of each of so many days, weeks and months. A period left
 * out keeps its default; 0 turns it off.
 */
export interface BackupKeep {
  /** How many days keep their last snapshot (restic `--keep-daily`). */
  daily?: number;
  /** How many weeks keep their last snapshot (restic `--keep-weekly`). */
  weekly?: number;
  /** How many months keep their last snapshot (restic `--keep-monthly`). */
  monthly?: number;
}

/** What one mailbox may send; see {@link MailConfigInput.sendingLimits}. */
export interface SendingLimits {
  /** Messages a login may submit in an hour (a leaky bucket: one more every hour/limit). */
  messagesPerHour?: number;
  /** Recipients, summed over its messages, a login may address in an hour. */
  recipientsPerHour?: number;
  /** Recipients of one message; the ones past it are refused with 452 4.5.3. */
  recipientsPerMessage?: number;
}

/**
 * What one mailbox may send an hour, where it differs from the stack's; see
 * {@link MailboxInput.sendingLimits}. Each limit has the bounds of the stack's.
 */
export interface MailboxSendingLimits {
  /** Messages this login may submit in an hour. */
  messagesPerHour?: number;
  /** Recipients, summed over its messages, this login may address in an hour. */
  recipientsPerHour?: number;
  /**
   * Not per mailbox: Postfix's smtpd_recipient_limit is one setting for the whole host, so
   * only the stack's {@link SendingLimits.recipientsPerMessage} sets it; given here, it is refused.
   */
  recipientsPerMessage?: never;
}

/** An alias as written in {@link MailConfigInput.aliases}. */
export interface AliasInput {
  /** The address mail is sent to, in a hosted domain. */
  address: string;
  /** Mailboxes, other aliases, or (with allowExternalForwarding) outside addresses. */
  to: string[];
}

/**
 * The directory of {@link MailConfigInput.ldap}. Dovecot checks each password by binding to the
 * directory as the user (so the directory's own password policy and lockouts apply), and
 * Postfix asks it which addresses exist and who may send as them. TLS is required and the
 * server's certificate is verified.
 */
export interface LdapInput {
  /**
   * The server: `ldaps://host[:port]` (TLS from the start, port 636 by default), or
   * `ldap://host[:port]` with {@link LdapInput.startTls}. Plain LDAP is refused.
   */
  url: string;
  /**
   * Upgrade an `ldap://` connection with StartTLS before anything is sent.
   * @default Off: the URL must then be `ldaps://`.
   */
  startTls?: boolean;
  /**
   * The directory's kind, which chooses the default {@link LdapInput.userFilter}.
   * @default openldap: users are inetOrgPerson entries.
   */
  flavor?: "openldap" | "activedirectory";
  /**
   * DN of the account that searches the directory for users. It needs read access to the
   * users' entries (the filter's and mailAttribute's attributes) and nothing more.
   */
  bindDn: string;
  /** That account's password (a secret): one line of printable ASCII. */
  bindPassword?: unknown;
  /** Where users are searched for (the whole subtree), e.g. `ou=people,dc=example,dc=com`. */
  baseDn: string;
  /**
   * The search filter of one user, with `%u` for the address typed at login or given as a
   * recipient (`%n` its local part, `%d` its domain).
   * @default openldap: `(&(objectClass=inetOrgPerson)(mail=%u))`; activedirectory:
   * `(&(objectClass=user)(mail=%u)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))`, which
   * leaves out disabled accounts.
   */
  userFilter?: string;
  /**
   * The attribute holding a user's mail address, which Postfix returns as the login that may
   * send as it.
   * @default `mail`.
   */
  mailAttribute?: string;
  /**
   * PEM certificate(s) of the CA that signed the server's certificate.
   * @default None: the host's system CA store, for a server with a certificate from a public CA.
   */
  caCertificate?: string;
  /**
   * The hosted domains whose users the directory holds; addresses of other domains are never
   * looked up there, and their users cannot log in from it.
   * @default Every hosted domain.
   */
  domains?: string[];
  /**
   * Seconds a directory login is cached: a password changed in, or a user removed from, the
   * directory is refused at most this long after. The host's whole login cache takes it.
   * @default 300 (5 minutes), against one search and bind for every login of a client.
   */
  cacheSeconds?: number;
  /**
   * Storage quota of every directory user, as a mailbox's quota.
   * @default That of a mailbox.
   */
  quota?: string;
}
