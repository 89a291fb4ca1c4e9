import type { MailConfig } from "./config";
import type { LdapConfig } from "./config/model";
import { generatedHeader, type HostEnv, PRODUCTION_ENV } from "./layout";

// Users from an LDAP directory (MailConfig.ldap): Dovecot's passdb and userdb, and a Postfix
// ldap table for virtual_mailbox_maps and smtpd_sender_login_maps.
//
// The bind password is a secret, so it is in neither user data nor the host bundle. Dovecot's
// settings (host bundle) include a runtime key file holding only `dnpass`. Postfix's ldap
// tables cannot include another file, and the table's file must hold `bind_pw`: the whole
// table is therefore a runtime key file, rendered here with the password and delivered in a
// SecureString parameter of its own like the restic password. Its other settings come from
// the configuration alike, so a changed directory setting still reaches both daemons at once.

/** Dovecot's LDAP settings (passdb and userdb args), below Dovecot's configuration directory. */
export const DOVECOT_LDAP_CONF = "dovecot-ldap.conf.ext";
/** The CA certificate of `ldap.caCertificate`, below Dovecot's configuration directory; Postfix reads it too. */
export const LDAP_CA_FILE = "mailstack-ldap-ca.pem";
/** The runtime key file Dovecot includes for the bind password. */
export const LDAP_DOVECOT_BIND_FILE = "ldap/dovecot-bind";
/** The runtime key file that is Postfix's ldap table. */
export const LDAP_POSTFIX_MAP_FILE = "ldap/postfix-map.cf";
/** The CA store when `ldap.caCertificate` is not given: Ubuntu's system store. */
export const SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt";

const caFile = (ldap: LdapConfig, env: HostEnv) => (ldap.caCertificate === undefined ? SYSTEM_CA_FILE : `${env.paths.dovecotConfig}/${LDAP_CA_FILE}`);

/**
 * A value as Dovecot's settings reader takes it verbatim: in double quotes, where `#` starts
 * no comment and `$ENV:` expands nothing, with `\` and `"` escaped.
 */
const quoted = (value: string) => `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;

/**
 * auth_cache_ttl: the directory's cacheSeconds when there is one, as nothing tells Dovecot
 * that a directory user was removed or given another password; an hour otherwise, as the sync
 * flushes the cache when the users file changes.
 */
export function authCacheTtl(config: MailConfig): string {
  return config.ldap === undefined ? "1 hour" : `${config.ldap.cacheSeconds} secs`;
}

/**
 * dovecot.conf's passdb and userdb of the directory, after those of the users file: a mailbox
 * of the stack config is found there first, and only an address unknown there is looked up
 * in the directory, and only in the directory's domains (username_filter). Empty without one.
 */
export function dovecotLdapBlocks(config: MailConfig, env: HostEnv = PRODUCTION_ENV): string {
  if (config.ldap === undefined) return "";
  const args = `${env.paths.dovecotConfig}/${DOVECOT_LDAP_CONF}`;
  return `
# Users from the LDAP directory, after the users file; the directory checks each password.
passdb {
  driver = ldap
  args = ${args}
  username_filter = ${config.ldap.domains.map((d) => `*@${d}`).join(" ")}
}
userdb {
  driver = ldap
  args = ${args}
}
`;
}

/**
 * /etc/dovecot/dovecot-ldap.conf.ext. Passwords are checked by binding as the user found
 * (auth_bind), so none is ever read from the directory; the login becomes the entry's own
 * address, lower-cased. uid, gid and home are fixed here as for the users file: nothing the
 * directory holds (homeDirectory, uidNumber) decides where mail is stored.
 */
export function dovecotLdapConf(config: MailConfig, env: HostEnv = PRODUCTION_ENV): string | undefined {
  const ldap = config.ldap;
  if (ldap === undefined) return undefined;
  const userAttrs = [`=uid=${env.vmail.uid}`, `=gid=${env.vmail.gid}`, `=home=${env.paths.vmail}/%d/%n`, ...(ldap.quotaMiB === undefined ? [] : [`=quota_rule=*:storage=${ldap.quotaMiB}M`])];
  return `${generatedHeader()}uris = ${ldap.url}
ldap_version = 3
# StartTLS on an ldap:// URL; an ldaps:// one is TLS from the start.
tls = ${ldap.startTls ? "yes" : "no"}
tls_ca_cert_file = ${caFile(ldap, env)}
tls_require_cert = hard
dn = ${quoted(ldap.bindDn)}
# dnpass, from the runtime key file. Without it (before the first sync) the search binds with
# an empty password, which the directory refuses: logins from it fail, the others go on.
!include_try ${env.paths.runtime}/${LDAP_DOVECOT_BIND_FILE}
auth_bind = yes
base = ${quoted(ldap.baseDn)}
scope = subtree
deref = never
pass_filter = ${quoted(ldap.userFilter)}
user_filter = ${quoted(ldap.userFilter)}
pass_attrs = =user=%L{ldap:${ldap.mailAttribute}}
user_attrs = ${userAttrs.join(", ")}
`;
}

/** The runtime key file Dovecot includes: the bind password, quoted. */
export function dovecotLdapBind(password: string): string {
  return `dnpass = ${quoted(password)}\n`;
}

/**
 * The filter in Postfix's placeholders: its %s is the whole address (Dovecot's %u), its %u
 * the local part (Dovecot's %n).
 */
export function postfixFilter(filter: string): string {
  return filter.replace(/%([und])/g, (_, c: "u" | "n" | "d") => ({ u: "%s", n: "%u", d: "%d" })[c]);
}

/**
 * Postfix's ldap table (ldap_table(5)), a runtime key file for its bind_pw. An address is
 * looked up only in the directory's domains (`domain`, which also skips `@domain` keys), and
 * the answer is the entry's mail attribute: any answer makes it a mailbox
 * (virtual_mailbox_maps), and the address is the login that may send as it
 * (smtpd_sender_login_maps), as Dovecot's login is that address.
 */
export function postfixLdapMap(ldap: LdapConfig, password: string, env: HostEnv = PRODUCTION_ENV): string {
  return `server_host = ${ldap.url}
version = 3
start_tls = ${ldap.startTls ? "yes" : "no"}
tls_ca_cert_file = ${caFile(ldap, env)}
tls_require_cert = yes
bind = yes
bind_dn = ${ldap.bindDn}
bind_pw = ${password}
search_base = ${ldap.baseDn}
scope = sub
query_filter = ${postfixFilter(ldap.userFilter)}
result_attribute = ${ldap.mailAttribute}
domain = ${ldap.domains.join(", ")}
`;
}

/** The Postfix lookup table of the directory, as main.cf names it after the texthash maps; undefined without one. */
export function postfixLdapTable(config: MailConfig, env: HostEnv = PRODUCTION_ENV): string | undefined {
  // proxymap keeps one connection to the directory for every smtpd process.
  return config.ldap === undefined ? undefined : `proxy:ldap:${env.paths.runtime}/${LDAP_POSTFIX_MAP_FILE}`;
}
