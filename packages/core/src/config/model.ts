import type { Architecture } from "../instance-types";
import type { AlarmSettings } from "../monitoring";
import type { AppPasswordService, BackupKeep, MailboxSendingLimits, SendingLimits } from "./input";

/**
 * A validated, normalised configuration: every default applied, every name in ASCII. Domains
 * and host names are lower case with IDNs in their xn-- form; addresses are lower case with
 * such a domain. Each field's meaning is that of the {@link MailConfigInput} field it comes from.
 */
export interface MailConfig {
  /** Primary mail domain, e.g. `example.com`. */
  domain: string;
  /** All hosted domains, primary first. */
  domains: string[];
  /** Mail host name (MX target, certificate name): the given one or `mail.<domain>`. */
  hostname: string;
  /** Mailboxes in input order, at least one. */
  mailboxes: Mailbox[];
  /** Every alias, including mailbox aliases and the generated postmaster@/abuse@ ones. */
  aliases: Alias[];
  /**
   * Catch-alls, by domain in code-unit order: mail to an address of `domain` that no mailbox or
   * alias receives at goes to `to`, a hosted mailbox or alias that reaches an enabled mailbox.
   */
  catchAll: {
    /** A hosted domain, at most once. */
    domain: string;
    /** Where its unknown addresses deliver. */
    to: string;
  }[];
  /** Whether aliases may forward to addresses outside the hosted domains. */
  allowExternalForwarding: boolean;
  /** Address postmaster@ of every domain delivers to: the given one or the first mailbox. */
  postmaster: string;
  /** Address abuse@ of every domain delivers to: the given one or the postmaster. */
  abuse: string;
  /** What every domain's `_dmarc` TXT record publishes. */
  dmarc: {
    /** The `p=` policy. */
    policy: "none" | "quarantine" | "reject";
    /** Address of the `rua=` aggregate reports (TLS-RPT reports go there too): the given one or the postmaster. */
    reports: string;
    /** Strict (`adkim=s; aspf=s`) rather than relaxed alignment. */
    strictAlignment: boolean;
  };
  /** Postfix's TLS policy for SMTP between servers. */
  tls: {
    /** On port 25 from other servers: `required` refuses mail without STARTTLS. */
    inbound: "opportunistic" | "required";
    /** To other servers: `dane` verifies against TLSA records where the recipient publishes them. */
    outbound: "dane" | "opportunistic" | "required";
    /** Lowest TLS protocol version accepted on port 25. */
    inboundMinVersion: "TLSv1.2" | "TLSv1.3";
  };
  /** Networks allowed to reach SSH, normalised (no host bits) and without repeats; empty means no SSH rule. */
  adminCidrs: string[];
  /** EC2 instance type, e.g. `t4g.small`. */
  instanceType: string;
  /** CPU architecture of the instance type, which picks the Ubuntu image. */
  architecture: Architecture;
  /** Root EBS volume size in GiB. */
  rootVolumeGiB: number;
  /** Mail data EBS volume size in GiB. */
  dataVolumeGiB: number;
  /** Whether Dovecot offers POP3S on port 995 besides IMAPS. */
  pop3: boolean;
  /** Largest message Postfix accepts, in MiB. */
  messageSizeLimitMiB: number;
  /** Selector that signs outgoing mail. */
  dkimSelector: string;
  /** Every published DKIM selector: the signing one first, then the next and the previous. */
  dkimSelectors: string[];
  /** Selector of the next key, published but not yet signing; undefined when none is being introduced. */
  dkimNextSelector?: string;
  /** Selector of the retired key, still published for mail in transit; undefined when none. */
  dkimPreviousSelector?: string;
  /** MX hosts by preference, this host first. */
  mx: {
    /** Host name the MX record points to. */
    host: string;
    /** MX preference, lower first: this host's is {@link PRIMARY_MX_PRIORITY}. */
    priority: number;
  }[];
  /** Domains added to every mail domain's SPF record as `include:`, without repeats; empty means `v=spf1 mx -all`. */
  spfIncludes: string[];
  /** MTA-STS policy mode; `none` withdraws the policy. */
  mtaSts: "enforce" | "testing" | "none";
  /** CA domains of the CAA `issue` records, without repeats; empty means no CAA record. */
  caaIssuers: string[];
  /** Domains published as sending and receiving no mail (null MX, `v=spf1 -all`, DMARC p=reject). */
  nonMailDomains: string[];
  /** Whether the Cloudflare zones are signed with DNSSEC and port 25 gets a TLSA record. */
  dnssec: boolean;
  /** Verification TXT values, in input order. */
  verificationRecords: {
    /** Domain the TXT record goes on. */
    domain: string;
    /** The TXT value, e.g. `google-site-verification=…`. */
    value: string;
  }[];
  /** DNS provider that publishes the records. */
  dnsProvider: "cloudflare" | "route53";
  /** Days a replaced or deleted backup object version is kept. */
  backupRetentionDays: number;
  /** S3 Object Lock default retention of the backup bucket; undefined means no Object Lock. */
  backupObjectLock?: {
    /** GOVERNANCE lets principals with s3:BypassGovernanceRetention delete; COMPLIANCE lets nobody. */
    mode: "GOVERNANCE" | "COMPLIANCE";
    /** Days each new object version is locked. */
    days: number;
  };
  /** Region of the backup bucket's replica, e.g. `eu-central-1`; undefined means no replica. */
  backupReplicaRegion?: string;
  /** Daily EBS snapshots of the data volume kept, by count. */
  snapshotRetentionDays: number;
  /** systemd OnCalendar expression of the backup timer. */
  backupSchedule: string;
  /** How many daily, weekly and monthly restic snapshots are kept. */
  backupKeep: Required<BackupKeep>;
  /** What one mailbox may send (see the input's sendingLimits); a mailbox's own hourly limits are in {@link Mailbox.sendingLimits}. */
  sendingLimits: Required<SendingLimits>;
  /** Address that gets the host's status-check and monitoring alarms; undefined means no alarms. */
  alertEmail?: string;
  /** Days the host's log group keeps its events. */
  logRetentionDays: number;
  /** The alarms turned off or with another threshold, by key; empty means every alarm at its default. */
  alarms: AlarmSettings;
  /** Minutes `pulumi up` waits for `mailstack check` to pass; 0 means no wait. */
  waitUntilHealthyMinutes: number;
  /** Check ids or prefixes the wait leaves out. */
  healthCheckSkip: string[];
  /** Amazon SES as relay and safety-net MX; undefined when neither sesOutbound nor sesInbound is on. */
  ses?: SesConfig;
  /** Availability zone of the host, e.g. `eu-west-1a`; undefined means the subnet's zone, or the region's first. */
  availabilityZone?: string;
  /** The directory users come from besides the mailboxes; undefined means none. */
  ldap?: LdapConfig;
}

/** {@link MailConfig.ses}; each field's meaning is that of the input field of the same name with `ses` before it. */
export interface SesConfig {
  /** Region of SES: `sesRegion`, or the stack's region. */
  region: string;
  /** Whether outgoing mail leaves through SES's SMTP interface. */
  outbound: boolean;
  /** Whether SES receives as the last MX, into the inbound bucket. */
  inbound: boolean;
  /** Label of each mail domain's custom MAIL FROM domain. */
  mailFromSubdomain: string;
}

/** The LDAP directory of {@link MailConfig.ldap}; each field's meaning is that of {@link LdapInput}'s. */
export interface LdapConfig {
  /** `ldaps://host[:port]`, or `ldap://host[:port]` with startTls. */
  url: string;
  /** Whether an `ldap://` connection is upgraded with StartTLS. */
  startTls: boolean;
  /** DN of the searching account. */
  bindDn: string;
  /** Search base (subtree). */
  baseDn: string;
  /** Filter of one user, with the placeholders %u, %n and %d (Dovecot's). */
  userFilter: string;
  /** Attribute holding the mail address. */
  mailAttribute: string;
  /** PEM of the CA that signs the server's certificate, ending in a newline; undefined means the system store. */
  caCertificate?: string;
  /** Hosted domains whose users come from the directory, in code-unit order. */
  domains: string[];
  /** Seconds a directory login stays cached. */
  cacheSeconds: number;
  /** Quota of each directory user in MiB; undefined means unlimited. */
  quotaMiB?: number;
}

/** A mailbox of {@link MailConfig}: a Dovecot user, who may send as its address and its aliases. */
export interface Mailbox {
  /** Its e-mail address, also the IMAP/SMTP login name. */
  address: string;
  /** Where the secret comes from; the value itself never enters a MailConfig. */
  credential: "password" | "passwordHash";
  /** Quota in MiB; undefined means unlimited. */
  quotaMiB?: number;
  /**
   * Whether it logs in and receives. A disabled mailbox keeps its stored mail and its
   * credential, but is left out of Dovecot's users and Postfix's mailboxes, and mail to it and
   * its own aliases is refused with {@link Mailbox.disabledReply}.
   */
  enabled: boolean;
  /** The text after `550 5.2.1` that senders get while it is disabled. */
  disabledReply: string;
  /** What this login may send an hour: its own sendingLimits, each left out the stack's. */
  sendingLimits: Required<Omit<MailboxSendingLimits, "recipientsPerMessage">>;
  /** Its app passwords, in input order: each one's position is its Dovecot slot. */
  appPasswords: AppPassword[];
  /** Whether its own password is refused, leaving only the app passwords. */
  requireAppPasswords: boolean;
  /** Position in the input's `mailboxes`, for error paths about its secret. */
  index: number;
}

/** An app password of a {@link Mailbox}. */
export interface AppPassword {
  /** Its name, unique within the mailbox, e.g. `phone`. */
  name: string;
  /** Where the secret comes from; the value itself never enters a MailConfig. */
  credential: "password" | "passwordHash";
  /** The protocols it logs in with, never one the host does not offer, without repeats. */
  services: AppPasswordService[];
}

/** An address of {@link MailConfig} that Postfix delivers to other addresses (a virtual alias). */
export interface Alias {
  /** The address mail is sent to, in a hosted domain. */
  address: string;
  /** Where it goes: mailboxes, other aliases, or (with allowExternalForwarding) outside addresses. */
  to: string[];
  /** Where it came from, for messages and for deciding who may send as it. */
  origin: "alias" | "mailbox" | "generated";
}

/**
 * The hosted addresses that deliver somewhere: each enabled mailbox, and each alias with a
 * target that does (another such address, or one outside the hosted domains). An address
 * missing here reaches only disabled mailboxes, or nothing. The config's rules and the
 * rendered maps read it alike.
 */
export function deliveringAddresses(mailboxes: readonly Pick<Mailbox, "address" | "enabled">[], aliases: readonly Pick<Alias, "address" | "to">[], hosted: (address: string) => boolean): Set<string> {
  const out = new Set(mailboxes.filter((m) => m.enabled).map((m) => m.address));
  // Until nothing changes: each round adds the aliases one step further from a mailbox.
  for (let grew = true; grew; ) {
    grew = false;
    for (const a of aliases) {
      if (!out.has(a.address) && a.to.some((t) => out.has(t) || !hosted(t))) {
        out.add(a.address);
        grew = true;
      }
    }
  }
  return out;
}

/** MX preference of the mail host itself; secondary MX hosts come after it. */
export const PRIMARY_MX_PRIORITY = 10;
