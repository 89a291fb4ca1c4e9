import type { MailConfig } from "./config";
import { generatedHeader, type HostEnv, PRODUCTION_ENV } from "./layout";
import { INTERMEDIATE_CIPHERS } from "./postfix";

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
auth_cache_ttl = 1 hour
auth_cache_negative_ttl = 5 mins
passdb {
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
  mail_plugins = $mail_plugins imap_quota
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
  sieve_before = ${p.dovecotConfig}/sieve/before.sieve
}
`;
}

/** Global Sieve script run before each user's: messages rspamd marked as spam go to Junk. */
export function sieveBefore(): string {
  return `${generatedHeader()}require ["fileinto"];
if header :is "X-Spam" "Yes" {
  fileinto "Junk";
  stop;
}
`;
}
