import type { MailConfig } from "./config";
import { MAX_APP_PASSWORDS } from "./config/fields";
import { APP_PASSWORDS_FILE, APP_PASSWORDS_ONLY } from "./runtime-files";
import { generatedHeader, type HostEnv, PRODUCTION_ENV } from "./layout";
import { authCacheTtl, dovecotLdapBlocks } from "./ldap";
import { INTERMEDIATE_CIPHERS } from "./postfix";

/**
 * The app passwords come first (see the runtime file's layout at appPasswordsFile): one passdb
 * per slot, each a hash lookup that costs nothing for a key not there and one bcrypt for a key
 * that is, and an app password that matches returns at once. The deny passdb then refuses a
 * mailbox's own password where it asks for app passwords only; the users file comes after it.
 * Every slot is always declared, so that adding or revoking an app password changes the
 * runtime file alone, never this one. A file Dovecot cannot read fails every login (the
 * default would go on to the users file, past the mailboxes that refuse their password).
 */
function appPasswordPassdbs(runtime: string): string {
  const file = `${runtime}/${APP_PASSWORDS_FILE}`;
  const slots = Array.from(
    { length: MAX_APP_PASSWORDS },
    (_, i) => `passdb {
  driver = passwd-file
  args = username_format=%Lu/%s/${i + 1} ${file}
  result_success = return-ok
  result_failure = continue
  result_internalfail = return-fail
}
`,
  ).join("");
  return `${slots}passdb {
  driver = passwd-file
  args = username_format=%Lu/${APP_PASSWORDS_ONLY} ${file}
  deny = yes
  result_internalfail = return-fail
}
`;
}

/**
 * /etc/dovecot/dovecot.conf, self-contained (no conf.d includes) so that what is rendered is
 * exactly what runs. Accepted by Dovecot 2.3.19 (Debian 12) and 2.3.21 (Ubuntu 24.04).
 */
export function dovecotConf(config: MailConfig, env: HostEnv = PRODUCTION_ENV): string {
  const p = env.paths;
  const protocols = ["imap", "lmtp", ...(config.pop3 ? ["pop3"] : [])].join(" ");
  // The plaintext listener gets port 0 (closed), not just left out: Dovecot would open it.
  const login = (protocol: string, port: number) => `service ${protocol}-login {
  inet_listener ${protocol} {
    port = 0
  }
  inet_listener ${protocol}s {
    port = ${port}
    ssl = yes
  }
}
`;
  const pop3 = config.pop3
    ? `${login("pop3", env.ports.pop3s)}protocol pop3 {
  pop3_uidl_format = %08Xu%08Xv
}
`
    : "";
  return `${generatedHeader()}
protocols = ${protocols}
listen = *
base_dir = ${p.dovecotBase}

# TLS on every client port; no plaintext login anywhere.
ssl = required
ssl_cert = <${p.tlsCert}
ssl_key = <${p.tlsKey}
ssl_min_protocol = TLSv1.2
ssl_cipher_list = ${INTERMEDIATE_CIPHERS}
ssl_prefer_server_ciphers = no
disable_plaintext_auth = yes

# Users come from the passwd-file synced from SSM. The cache absorbs the bcrypt cost of
# clients that log in every few minutes; the sync flushes it when passwords change.
auth_mechanisms = plain login
auth_username_format = %Lu
auth_cache_size = 10M
auth_cache_ttl = ${authCacheTtl(config)}
auth_cache_negative_ttl = 5 mins
${appPasswordPassdbs(p.runtime)}passdb {
  driver = passwd-file
  args = username_format=%Lu ${p.runtime}/users
}
userdb {
  driver = passwd-file
  args = username_format=%Lu ${p.runtime}/users
  default_fields = uid=${env.vmail.uid} gid=${env.vmail.gid} home=${p.vmail}/%d/%n
}

mail_location = maildir:~/Maildir
mail_uid = ${env.vmail.uid}
mail_gid = ${env.vmail.gid}
first_valid_uid = ${env.vmail.uid}
last_valid_uid = ${env.vmail.uid}
mail_plugins = $mail_plugins quota

namespace inbox {
  inbox = yes
  separator = /
  mailbox Drafts {
    special_use = \\Drafts
    auto = subscribe
  }
  mailbox Junk {
    special_use = \\Junk
    auto = subscribe
  }
  mailbox Trash {
    special_use = \\Trash
    auto = subscribe
  }
  mailbox Sent {
    special_use = \\Sent
    auto = subscribe
  }
  mailbox Archive {
    special_use = \\Archive
    auto = subscribe
  }
}

${login("imap", env.ports.imaps)}${pop3}
# Postfix delivers over LMTP and authenticates submission through these sockets.
service lmtp {
  unix_listener ${p.postfixQueue}/private/dovecot-lmtp {
    mode = 0600
    user = postfix
    group = postfix
  }
}
service auth {
  unix_listener ${p.postfixQueue}/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
# Postfix asks before accepting each recipient, so mail for a full mailbox is refused at RCPT.
service quota-status {
  executable = quota-status -p postfix
  unix_listener ${p.postfixQueue}/private/quota-status {
    mode = 0600
    user = postfix
    group = postfix
  }
  client_limit = 1
}

protocol lmtp {
  mail_plugins = $mail_plugins sieve
  postmaster_address = postmaster@${config.domain}
}
protocol imap {
  mail_plugins = $mail_plugins imap_quota imap_sieve
  mail_max_userip_connections = 50
}

plugin {
  quota = count:User quota
  quota_vsizes = yes
  quota_grace = 10%%
  quota_status_success = DUNNO
  quota_status_nouser = DUNNO
  quota_status_overquota = "552 5.2.2 Mailbox is full"
  sieve = file:~/sieve;active=~/.dovecot.sieve
  sieve_before = ${p.sieve}/before.sieve

  # Bayes learning: moving a message into Junk teaches rspamd spam, moving it out teaches ham.
  sieve_plugins = sieve_imapsieve sieve_extprograms
  sieve_global_extensions = +vnd.dovecot.pipe +vnd.dovecot.environment
  sieve_pipe_socket_dir = ${LEARN_SOCKETS}
  imapsieve_mailbox1_name = Junk
  imapsieve_mailbox1_causes = COPY APPEND
  imapsieve_mailbox1_before = file:${p.sieve}/learn-spam.sieve
  imapsieve_mailbox2_name = *
  imapsieve_mailbox2_from = Junk
  imapsieve_mailbox2_causes = COPY
  imapsieve_mailbox2_before = file:${p.sieve}/learn-ham.sieve
}
${learnServices(env)}${dovecotLdapBlocks(config, env)}`;
}

/**
 * Where the learning services' sockets are, relative to base_dir: base_dir itself, as Dovecot
 * makes no subdirectory for a listener.
 */
const LEARN_SOCKETS = ".";

/**
 * The learning services the learn scripts pipe a message to. Each runs its program as _rspamd,
 * the one user that may open rspamd's controller, so a mail process (vmail) can hand rspamd a
 * message to learn and do nothing else there: not change its actions, not read its history.
 */
function learnServices(env: HostEnv): string {
  return (["spam", "ham"] as const)
    .map(
      (what) => `service rspamd-learn-${what} {
  executable = script ${env.paths.sievePipe}/rspamd-learn-${what}
  user = _rspamd
  unix_listener rspamd-learn-${what} {
    user = vmail
    mode = 0600
  }
}
`,
    )
    .join("");
}

/**
 * Global Sieve scripts by file name, compiled on the host by `sievec` on their directory:
 * `before` files what rspamd marked as spam into Junk at delivery; the `learn-*` scripts
 * run on IMAP moves into and out of Junk (IMAPSieve) and hand the message to rspamd.
 */
export function sieveScripts(): Record<string, string> {
  const learn = (what: "spam" | "ham", skip: string) => `${generatedHeader()}require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables"];
${skip}pipe :copy "rspamd-learn-${what}";
`;
  return {
    "before.sieve": sieveBefore(),
    "learn-spam.sieve": learn("spam", ""),
    // Deleting spam (Junk to Trash) says nothing about it being ham.
    "learn-ham.sieve": learn(
      "ham",
      `if environment :matches "imap.mailbox" "*" {
  if string "\${1}" "Trash" {
    stop;
  }
}
`,
    ),
  };
}

/** The programs of the learning services in dovecot.conf: the message, to rspamd's controller. */
export function sievePipePrograms(env: HostEnv = PRODUCTION_ENV): Record<string, string> {
  const program = (what: string) => `#!/bin/sh
${generatedHeader()}exec /usr/bin/rspamc --connect ${env.paths.rspamdControllerSocket} learn_${what}
`;
  return { "rspamd-learn-spam": program("spam"), "rspamd-learn-ham": program("ham") };
}

/** Global Sieve script run before each user's: messages rspamd marked as spam go to Junk. */
function sieveBefore(): string {
  return `${generatedHeader()}require ["fileinto"];
if header :is "X-Spam" "Yes" {
  fileinto "Junk";
  stop;
}
`;
}
