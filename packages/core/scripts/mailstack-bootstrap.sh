#!/bin/bash
# First-boot setup of the mail host, run by cloud-init after the packages and files are in
# place. Every step checks before it acts, so running it again is harmless.
set -euo pipefail
# cloud-init runs this without an environment. Every setting (paths, commands, units) comes
# from the file the core renders; exported, so that the programs run below see them too, as
# they do under their units' EnvironmentFile (mailstack-sync reads nothing else).
set -a
. /etc/default/mailstack
set +a
read -ra boot_stop <<<"$MAILSTACK_BOOT_STOP"
read -ra boot_start <<<"$MAILSTACK_BOOT_START"

log() { echo "mailstack-bootstrap: $*" >&2; }

# Installing the packages started some daemons on the root volume; stop them until the
# data volume is in place so that no mail lands where an instance replacement loses it.
systemctl stop "${boot_stop[@]}" 2>/dev/null || true
# Port 80 belongs to certbot's HTTP-01 responder; mailstack's site listens on 443 only.
rm -f /etc/nginx/sites-enabled/default

getent group vmail >/dev/null || groupadd --system --gid "$MAILSTACK_VMAIL_GID" vmail
getent passwd vmail >/dev/null ||
  useradd --system --uid "$MAILSTACK_VMAIL_UID" --gid vmail --home-dir "$MAILSTACK_VMAIL" \
    --no-create-home --shell /usr/sbin/nologin vmail

"$MAILSTACK_DATA_VOLUME_COMMAND"
chown vmail:vmail "$MAILSTACK_VMAIL"
chmod 0750 "$MAILSTACK_VMAIL"

# A local validating resolver: Spamhaus refuses the VPC resolver, and DANE needs DNSSEC.
systemctl disable --now "$MAILSTACK_RESOLVCONF_UNIT" 2>/dev/null || true
systemctl enable "$MAILSTACK_RESOLVER_UNIT"
systemctl restart "$MAILSTACK_RESOLVER_UNIT"
systemctl restart "$MAILSTACK_RESOLVED_UNIT" 2>/dev/null || true
if [ -L /etc/resolv.conf ] || ! cmp -s /etc/resolv.conf "$MAILSTACK_RESOLV_CONF"; then
  rm -f /etc/resolv.conf
  cp "$MAILSTACK_RESOLV_CONF" /etc/resolv.conf
fi

# The instance profile's credentials can take a little while to appear after boot.
for attempt in $(seq 1 60); do
  if "$MAILSTACK_SYNC_COMMAND" --no-reload; then break; fi
  if [ "$attempt" -eq 60 ]; then
    log "could not install the runtime files from SSM; the daemons stay stopped"
    exit 1
  fi
  sleep 10
done

# After the sync, which brings the certificate's key and names.
"$MAILSTACK_CERTIFICATE_COMMAND" --self-signed

# Global scripts: Dovecot cannot compile them itself in a directory only root may write.
sievec "$MAILSTACK_SIEVE"

systemctl daemon-reload
systemctl enable "$MAILSTACK_FIREWALL_UNIT"
systemctl restart "$MAILSTACK_FIREWALL_UNIT"
# The daemons, fail2ban, and the sync, certificate and backup timers.
systemctl enable --now "${boot_start[@]}"
"$MAILSTACK_CERTIFICATE_COMMAND" || log "no certificate from Let's Encrypt yet (DNS may not resolve yet); the timer retries"
log "done"
