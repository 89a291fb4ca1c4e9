import type { MailConfig } from "./config";
import { generatedHeader, type HostEnv, POSTSRSD, PRODUCTION_ENV } from "./layout";
import { postfixLdapTable } from "./ldap";
import { RECIPIENT_ACCESS_FILE } from "./runtime-files";
import { SES_MAX_MESSAGE_BYTES, SES_MAX_RECIPIENTS, SES_SMTP_CREDENTIALS_FILE, sesRelayNextHop } from "./ses";

/**
 * Mozilla "intermediate" TLS 1.2 ciphers without the DHE suites: every client that speaks
 * TLS 1.2 has ECDHE, and DHE would need Diffie-Hellman parameters in Dovecot. TLS 1.3
 * suites are always on in OpenSSL.
 */
export const INTERMEDIATE_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

// Weighted DNSBLs for postscreen. SORBS closed in June 2024 and is not listed; DNSWL
// entries lower the score of known-good senders. Spamhaus answers only resolvers that are
// not public or cloud forwarders, hence the local unbound.
const DNSBL_SITES = [
  "zen.spamhaus.org=127.0.0.[2..11]*3",
  "bl.spamcop.net*2",
  "psbl.surriel.com*1",
  "list.dnswl.org=127.0.[0..255].[2..3]*-2",
  "list.dnswl.org=127.0.[0..255].0*-1",
];

/** `key = value` lines; a key starting with "#" is a section comment. */
function settings(entries: [string, string | number | undefined][]): string {
  return entries
    .filter(([k, v]) => k.startsWith("#") || v !== undefined)
    .map(([k, v]) => (k.startsWith("#") ? `\n${k}` : `${k} = ${v}`))
    .join("\n");
}

/**
 * Forwarding with SRS (PostSRSd, see {@link POSTSRSD}), only where aliases may forward off the
 * host. Canonical mapping runs in cleanup, before Postfix knows where each copy goes: every
 * envelope sender outside the hosted domains becomes an SRS address of the primary domain,
 * whose SPF names this host, and an SRS address of ours given as a recipient (a bounce) goes
 * back to the original sender. Our own users' senders are hosted and never rewritten
 * (postsrsd's exclusions). The LMTP client undoes the rewrite for copies delivered here, so
 * mailboxes and Sieve see the real Return-Path; only mail that leaves carries SRS. Headers are
 * never touched: a bounce's signed To: stays intact. smtpd treats a recipient the reverse map
 * knows as listed, so a forged or expired SRS address is refused at RCPT like an unknown user.
 */
function srsSettings(config: MailConfig): [string, string | undefined][] {
  if (!config.allowExternalForwarding) return [];
  const forward = `tcp:${POSTSRSD.listen}:${POSTSRSD.forwardPort}`;
  const reverse = `tcp:${POSTSRSD.listen}:${POSTSRSD.reversePort}`;
  return [
    ["# Forwarding: SRS for senders outside the hosted domains (PostSRSd)", undefined],
    ["sender_canonical_maps", forward],
    ["sender_canonical_classes", "envelope_sender"],
    ["recipient_canonical_maps", reverse],
    ["recipient_canonical_classes", "envelope_recipient"],
    ["lmtp_generic_maps", reverse],
  ];
}

/**
 * /etc/default/postsrsd, which the package's unit launcher sources (every setting it reads, so
 * none falls back to the launcher's own default). SRS addresses are in the primary domain;
 * senders in any hosted domain or at the host name (system mail) are never rewritten. No
 * secret here: the launcher names the file the package generated on the host.
 */
export function postsrsdSettings(config: MailConfig): string {
  // Without forwarding Postfix never asks it: named from the host name alone then, so that
  // adding a domain changes no host file.
  const [domain, exclude] = config.allowExternalForwarding ? [config.domain, [...config.domains, config.hostname]] : [config.hostname, [config.hostname]];
  const values: [string, string | number][] = [
    ["SRS_DOMAIN", domain],
    // Exact names only: a subdomain we do not host has an SPF record of its own.
    ["SRS_EXCLUDE_DOMAINS", exclude.join(",")],
    ["SRS_SEPARATOR", "="],
    ["SRS_SECRET", POSTSRSD.secret],
    ["SRS_HASHLENGTH", 4],
    ["SRS_HASHMIN", 4],
    ["SRS_FORWARD_PORT", POSTSRSD.forwardPort],
    ["SRS_REVERSE_PORT", POSTSRSD.reversePort],
    ["SRS_LISTEN_ADDR", POSTSRSD.listen],
    ["RUN_AS", POSTSRSD.user],
    ["CHROOT", POSTSRSD.chroot],
    ["SRS_EXTRA_OPTIONS", ""],
  ];
  return generatedHeader() + values.map(([k, v]) => `${k}="${String(v)}"`).join("\n") + "\n";
}

/**
 * With sesOutbound, every message for another domain leaves through the SES transport to
 * SES's SMTP endpoint (see master.cf's {@link SES_TRANSPORT}), never on port 25.
 */
function sesRelaySettings(config: MailConfig): [string, string | undefined][] {
  if (!config.ses?.outbound) return [];
  return [
    ["# Outgoing mail through Amazon SES (sesOutbound)", undefined],
    ["default_transport", `${SES_TRANSPORT}:${sesRelayNextHop(config.ses.region)}`],
    [`${SES_TRANSPORT}_destination_recipient_limit`, String(SES_MAX_RECIPIENTS)],
  ];
}

/** master.cf's transport to SES's SMTP interface. */
export const SES_TRANSPORT = "ses";
/** master.cf's smtpd on loopback that the SES importer hands each message to. */
export const SES_IMPORT_SERVICE = "ses-import";

/**
 * The SES transport's settings: TLS with SES's certificate verified against the endpoint's
 * name, and AUTH with the stack's credentials, or no mail at all. SES's refusals (a sandbox's
 * unverified recipient, a suspended account, wrong credentials) defer instead of bounce: the
 * mail waits in the queue, where monitoring counts it, until the operator fixes the cause.
 */
function sesTransport(env: HostEnv): [string, string][] {
  return [
    ["syslog_name", "postfix/ses"],
    ["smtp_tls_security_level", "secure"],
    ["smtp_tls_secure_cert_match", "nexthop"],
    // SNI: the endpoint's name, as a client of a load-balanced service should send it.
    ["smtp_tls_servername", "nexthop"],
    ["smtp_dns_support_level", "enabled"],
    ["smtp_sasl_auth_enable", "yes"],
    ["smtp_sasl_password_maps", `texthash:${env.paths.runtime}/${SES_SMTP_CREDENTIALS_FILE}`],
    ["smtp_sasl_security_options", "noanonymous"],
    ["smtp_sasl_tls_security_options", "noanonymous"],
    ["soft_bounce", "yes"],
  ];
}

/**
 * The importer's smtpd: loopback only, port 25's restrictions and milters (main.cf's), and
 * XCLIENT so that the restrictions, rspamd and the Received header see the client SES saw.
 * Not XFORWARD: that changes only the logs, and rspamd would take the importer's 127.0.0.1
 * for a local client and skip SPF, DMARC, greylisting and its blocklists. No TLS (loopback)
 * and no AUTH: nothing here is a user's submission.
 */
function sesImportService(): [string, string][] {
  return [
    ["syslog_name", "postfix/ses-import"],
    ["smtpd_tls_security_level", "none"],
    ["smtpd_authorized_xclient_hosts", "127.0.0.0/8"],
    ["smtpd_client_restrictions", ""],
    ["smtpd_relay_restrictions", "reject_unauth_destination"],
    ["smtpd_client_connection_rate_limit", "0"],
  ];
}

/** /etc/postfix/main.cf */
export function postfixMainCf(config: MailConfig, env: HostEnv = PRODUCTION_ENV): string {
  const p = env.paths;
  const outbound = {
    dane: { level: "dane", dns: "dnssec" },
    opportunistic: { level: "may", dns: "enabled" },
    required: { level: "encrypt", dns: "enabled" },
  }[config.tls.outbound];
  const minTls = `>=${config.tls.inboundMinVersion}`;
  const ldap = postfixLdapTable(config, env);
  const withLdap = (table: string) => (ldap === undefined ? table : `${table}, ${ldap}`);
  return (
    generatedHeader() +
    settings([
      ["# Identity", undefined],
      ["compatibility_level", "3.6"],
      ["myhostname", config.hostname],
      ["mydomain", config.domain],
      ["myorigin", "$myhostname"],
      // No local delivery: system accounts (nobody@, www-data@ the host) are no recipients, and
      // nothing is ever written under /var/mail on the root volume. The host name and localhost
      // are alias domains whose only addresses are the role accounts (the aliases runtime file).
      ["mydestination", ""],
      ["virtual_alias_domains", "$myhostname, localhost"],
      // The host's own address literal ([10.0.1.5]) stays a local domain whatever mydestination
      // says: its error transport refuses every recipient there at RCPT, and bounces what is
      // submitted on the host itself.
      ["local_transport", "error:5.1.1 this host has no local mailboxes"],
      ["mynetworks", "127.0.0.0/8 [::1]/128"],
      ["inet_interfaces", "all"],
      // The Elastic IP is IPv4; an IPv6 route without a AAAA and PTR only earns rejections.
      ["inet_protocols", "ipv4"],
      ["smtpd_banner", "$myhostname ESMTP"],
      ["biff", "no"],
      ["append_dot_mydomain", "no"],
      ["readme_directory", "no"],
      ["queue_directory", p.postfixQueue],
      ["data_directory", p.postfixData],
      ["recipient_delimiter", "+"],
      ["message_size_limit", config.messageSizeLimitMiB * 1024 * 1024],
      // Postfix refuses to start with a mailbox limit below the message limit; no local or
      // virtual(8) mailbox exists here, Dovecot's quota is the limit.
      ["mailbox_size_limit", 0],
      ["alias_maps", ""],
      ["alias_database", ""],
      ["# Hosted domains, mailboxes and aliases (synced from SSM; texthash needs no postmap)", undefined],
      ["virtual_mailbox_domains", `texthash:${p.runtime}/domains`],
      // The directory after the stack config's own maps (see ldap.ts).
      ["virtual_mailbox_maps", withLdap(`texthash:${p.runtime}/mailboxes`)],
      ["virtual_alias_maps", `texthash:${p.runtime}/aliases`],
      ["virtual_transport", "lmtp:unix:private/dovecot-lmtp"],
      ["smtpd_sender_login_maps", withLdap(`texthash:${p.runtime}/sender-logins`)],
      ...srsSettings(config),
      ["# Queue: give up on undeliverable mail after two days, warn senders after three hours", undefined],
      ["maximal_queue_lifetime", "2d"],
      ["bounce_queue_lifetime", "1d"],
      ["delay_warning_time", "3h"],
      ["# TLS as a server; submission ports tighten this in master.cf", undefined],
      ["smtpd_tls_chain_files", `${p.tlsKey}, ${p.tlsCert}`],
      ["smtpd_tls_security_level", config.tls.inbound === "required" ? "encrypt" : "may"],
      ["smtpd_tls_auth_only", "yes"],
      ["smtpd_tls_protocols", minTls],
      ["smtpd_tls_mandatory_protocols", minTls],
      ["smtpd_tls_mandatory_ciphers", "medium"],
      // Port 25 and outbound mail keep Postfix's own broad "medium" list: a peer refused a
      // cipher sends in plaintext instead. Submission, for our own users, gets "high" = these.
      ["tls_high_cipherlist", INTERMEDIATE_CIPHERS],
      ["tls_preempt_cipherlist", "no"],
      ["tls_ssl_options", "NO_COMPRESSION, NO_RENEGOTIATION"],
      ["smtpd_tls_loglevel", 1],
      ["smtpd_tls_received_header", "yes"],
      ["smtpd_tls_session_cache_database", "btree:${data_directory}/smtpd_scache"],
      ["# TLS as a client", undefined],
      ["smtp_tls_security_level", outbound.level],
      ["smtp_dns_support_level", outbound.dns],
      ["smtp_tls_CAfile", "/etc/ssl/certs/ca-certificates.crt"],
      ["smtp_tls_mandatory_protocols", ">=TLSv1.2"],
      ["smtp_tls_loglevel", 1],
      ["smtp_tls_session_cache_database", "btree:${data_directory}/smtp_scache"],
      ["smtp_address_preference", "ipv4"],
      ...sesRelaySettings(config),
      ["# Authentication through Dovecot, enabled per service in master.cf", undefined],
      ["smtpd_sasl_type", "dovecot"],
      ["smtpd_sasl_path", "private/auth"],
      ["smtpd_sasl_auth_enable", "no"],
      ["smtpd_sasl_security_options", "noanonymous"],
      ["smtpd_sasl_tls_security_options", "noanonymous"],
      ["smtpd_sasl_authenticated_header", "no"],
      ["# Port 25: only mail for hosted domains, from well-formed senders", undefined],
      ["smtpd_helo_required", "yes"],
      ["disable_vrfy_command", "yes"],
      // ETRN (flush a site's queue on request) serves backup MXs of dial-up hosts; here it only
      // tells a stranger that queue exists.
      ["smtpd_etrn_restrictions", "reject"],
      ["smtpd_discard_ehlo_keywords", "etrn"],
      ["strict_rfc821_envelopes", "yes"],
      ["smtpd_helo_restrictions", "reject_invalid_helo_hostname"],
      ["smtpd_sender_restrictions", "reject_non_fqdn_sender, reject_unknown_sender_domain"],
      // No permit_mynetworks: a client on loopback must authenticate like anyone else.
      ["smtpd_relay_restrictions", "permit_sasl_authenticated, reject_unauth_destination"],
      [
        "smtpd_recipient_restrictions",
        // Disabled mailboxes (and their own aliases) are refused with their own text, before
        // the unknown-user check. Dovecot's quota-status refuses mail for a full mailbox at
        // RCPT time, before it is accepted. While Dovecot is down the mail is accepted and
        // waits in the queue instead.
        `reject_non_fqdn_recipient, reject_unknown_recipient_domain, check_recipient_access texthash:${p.runtime}/${RECIPIENT_ACCESS_FILE}, reject_unlisted_recipient, check_policy_service { unix:private/quota-status, default_action=DUNNO }`,
      ],
      ["smtpd_data_restrictions", "reject_unauth_pipelining, reject_multi_recipient_bounce"],
      // SMTP smuggling (CVE-2023-51764): normalise bare LF line endings.
      ["smtpd_forbid_bare_newline", "normalize"],
      ["smtpd_forbid_bare_newline_exclusions", "$mynetworks"],
      ["smtpd_client_connection_rate_limit", 60],
      ["smtpd_client_auth_rate_limit", 30],
      ["smtpd_error_sleep_time", "1s"],
      ["smtpd_soft_error_limit", 10],
      ["smtpd_hard_error_limit", 20],
      ["# postscreen on port 25: greeting and bare-newline tests, weighted DNSBLs", undefined],
      ["postscreen_access_list", "permit_mynetworks"],
      ["postscreen_denylist_action", "drop"],
      ["postscreen_greet_action", "enforce"],
      ["postscreen_dnsbl_sites", DNSBL_SITES.join(", ")],
      ["postscreen_dnsbl_threshold", 3],
      ["postscreen_dnsbl_allowlist_threshold", -1],
      ["postscreen_dnsbl_action", "enforce"],
      ["postscreen_bare_newline_enable", "yes"],
      ["postscreen_bare_newline_action", "enforce"],
      ["# rspamd: filtering, greylisting and DKIM signing", undefined],
      ["smtpd_milters", `unix:${p.rspamdMilterSocket}`],
      ["non_smtpd_milters", "$smtpd_milters"],
      ["milter_protocol", 6],
      ["milter_mail_macros", "i {mail_addr} {client_addr} {client_name} {auth_authen}"],
      // Defer rather than pass mail unsigned and unfiltered while rspamd is down: senders
      // retry, nothing is lost, and nothing leaves without its DKIM signature.
      ["milter_default_action", "tempfail"],
    ]) +
    "\n"
  );
}

/** The cleanup service of authenticated submissions, which rewrites their Received header. */
const SUBMISSION_CLEANUP = "submission-cleanup";
/** Its header_checks table, in Postfix's configuration directory. */
export const SUBMISSION_HEADER_CHECKS = "submission-header-checks";

/**
 * header_checks of authenticated submissions: the first Received header names the client's
 * HELO and address (a user's home IP, a laptop's name) to every recipient. It keeps the rest
 * (TLS, this host, the queue id). Postfix's regexp tables match a folded header as one
 * string, newlines included, so `(.*)` carries the continuation lines over.
 */
export function submissionHeaderChecks(): string {
  return `${generatedHeader()}/^Received: from [^(]*\\([^)]*\\)(.*)$/ REPLACE Received: from authenticated-client$1\n`;
}

interface Service {
  name: string;
  type: "inet" | "unix" | "unix-dgram" | "fifo" | "pass";
  private?: "n" | "-";
  unpriv?: "n" | "-";
  chroot?: "n" | "-";
  wakeup?: string;
  maxproc?: string;
  command: string;
  options?: [string, string][];
}

function service(s: Service): string {
  const head = [s.name, s.type, s.private ?? "-", s.unpriv ?? "-", s.chroot ?? "n", s.wakeup ?? "-", s.maxproc ?? "-", s.command]
    .map((f, i) => (i < 7 ? f.padEnd(i === 0 ? 12 : 6) : f))
    .join(" ");
  return [head, ...(s.options ?? []).map(([k, v]) => `  -o ${k}=${v}`)].join("\n");
}

/**
 * /etc/postfix/master.cf. No service is chrooted: the SASL, LMTP and milter sockets then
 * resolve the same way in every process, and the jail adds little next to systemd's own
 * sandboxing on Ubuntu.
 */
export function postfixMasterCf(config: MailConfig, env: HostEnv = PRODUCTION_ENV): string {
  const submission: [string, string][] = [
    ["syslog_name", "postfix/submission"],
    ["smtpd_tls_security_level", "encrypt"],
    ["smtpd_tls_protocols", ">=TLSv1.2"],
    ["smtpd_tls_mandatory_protocols", ">=TLSv1.2"],
    ["smtpd_tls_mandatory_ciphers", "high"],
    ["smtpd_sasl_auth_enable", "yes"],
    ["smtpd_client_restrictions", "permit_sasl_authenticated,reject"],
    // The null sender is for bounces, which only the server sends; login mismatch ignores it.
    ["smtpd_sender_restrictions", "reject_non_fqdn_sender,check_sender_access,inline:{<>=REJECT},reject_sender_login_mismatch,permit_sasl_authenticated,reject"],
    ["smtpd_relay_restrictions", "permit_sasl_authenticated,reject"],
    // A disabled mailbox is refused to our own users too, with the text senders from outside get.
    ["smtpd_recipient_restrictions", `reject_non_fqdn_recipient,check_recipient_access,texthash:${env.paths.runtime}/${RECIPIENT_ACCESS_FILE},permit_sasl_authenticated,reject`],
    ["milter_macro_daemon_name", "ORIGINATING"],
    ["cleanup_service_name", SUBMISSION_CLEANUP],
    // Recipients past it get 452 4.5.3; rspamd's ratelimit counts the rest per hour.
    ["smtpd_recipient_limit", String(config.sendingLimits.recipientsPerMessage)],
    // Through SES a larger message would wait two days and come back: refused at once instead.
    ...(config.ses?.outbound && config.messageSizeLimitMiB * 1024 * 1024 > SES_MAX_MESSAGE_BYTES ? [["message_size_limit", String(SES_MAX_MESSAGE_BYTES)] as [string, string]] : []),
  ];
  const services: Service[] = [
    { name: String(env.ports.smtp), type: "inet", private: "n", maxproc: "1", command: "postscreen" },
    { name: "smtpd", type: "pass", command: "smtpd" },
    { name: "dnsblog", type: "unix", maxproc: "0", command: "dnsblog" },
    { name: "tlsproxy", type: "unix", maxproc: "0", command: "tlsproxy" },
    { name: String(env.ports.submission), type: "inet", private: "n", command: "smtpd", options: submission },
    {
      name: String(env.ports.submissions),
      type: "inet",
      private: "n",
      command: "smtpd",
      options: [["syslog_name", "postfix/submissions"], ["smtpd_tls_wrappermode", "yes"], ...submission.slice(1)],
    },
    { name: "pickup", type: "unix", private: "n", wakeup: "60", maxproc: "1", command: "pickup" },
    { name: "cleanup", type: "unix", private: "n", maxproc: "0", command: "cleanup" },
    {
      name: SUBMISSION_CLEANUP,
      type: "unix",
      private: "n",
      maxproc: "0",
      command: "cleanup",
      options: [["header_checks", `regexp:${env.paths.postfixConfig}/${SUBMISSION_HEADER_CHECKS}`]],
    },
    { name: "qmgr", type: "unix", private: "n", wakeup: "300", maxproc: "1", command: "qmgr" },
    { name: "tlsmgr", type: "unix", wakeup: "1000?", maxproc: "1", command: "tlsmgr" },
    { name: "rewrite", type: "unix", command: "trivial-rewrite" },
    { name: "bounce", type: "unix", maxproc: "0", command: "bounce" },
    { name: "defer", type: "unix", maxproc: "0", command: "bounce" },
    { name: "trace", type: "unix", maxproc: "0", command: "bounce" },
    { name: "verify", type: "unix", maxproc: "1", command: "verify" },
    { name: "flush", type: "unix", private: "n", wakeup: "1000?", maxproc: "0", command: "flush" },
    { name: "proxymap", type: "unix", command: "proxymap" },
    { name: "proxywrite", type: "unix", maxproc: "1", command: "proxymap" },
    { name: "smtp", type: "unix", command: "smtp" },
    { name: "relay", type: "unix", command: "smtp", options: [["syslog_name", "postfix/$service_name"]] },
    { name: "showq", type: "unix", private: "n", command: "showq" },
    { name: "error", type: "unix", command: "error" },
    { name: "retry", type: "unix", command: "error" },
    { name: "discard", type: "unix", command: "discard" },
    { name: "local", type: "unix", unpriv: "n", command: "local" },
    { name: "virtual", type: "unix", unpriv: "n", command: "virtual" },
    { name: "lmtp", type: "unix", command: "lmtp" },
    { name: "anvil", type: "unix", maxproc: "1", command: "anvil" },
    { name: "scache", type: "unix", maxproc: "1", command: "scache" },
    { name: "postlog", type: "unix-dgram", private: "n", maxproc: "1", command: "postlogd" },
    ...(config.ses?.outbound ? [{ name: SES_TRANSPORT, type: "unix" as const, command: "smtp", options: sesTransport(env) }] : []),
    ...(config.ses?.inbound ? [{ name: `127.0.0.1:${env.ports.sesImport}`, type: "inet" as const, private: "n" as const, command: "smtpd", options: sesImportService() }] : []),
  ];
  return (
    generatedHeader() +
    "# service     type   private unpriv chroot wakeup maxproc command\n" +
    services.map(service).join("\n") +
    "\n"
  );
}
