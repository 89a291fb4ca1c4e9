#!/bin/bash
# First-boot setup of the mail host, run by cloud-init after the packages and files are in
# place. Every step checks before it acts, so running it again is harmless.
set -euo pipefail
. /etc/default/mailstack
sbin="$(dirname "$(readlink -f "$0")")"

log() { echo "mailstack-bootstrap: $*" >&2; }

# Installing the packages started some daemons on the root volume; stop them until the
# data volume is in place so that no mail lands where an instance replacement loses it.
systemctl stop postfix.service dovecot.service rspamd.service redis-server.service nginx.service 2>/dev/null || true
# Port 80 belongs to certbot's HTTP-01 responder; mailstack's site listens on 443 only.
rm -f /etc/nginx/sites-enabled/default

getent group vmail >/dev/null || groupadd --system --gid "$MAILSTACK_VMAIL_GID" vmail
getent passwd vmail >/dev/null ||
  useradd --system --uid "$MAILSTACK_VMAIL_UID" --gid vmail --home-dir /var/vmail \
    --no-create-home --shell /usr/sbin/nologin vmail

"$sbin/mailstack-data-volume"
chown vmail:vmail /var/vmail
chmod 0750 /var/vmail

# A local validating resolver: Spamhaus refuses the VPC resolver, and DANE needs DNSSEC.
systemctl disable --now unbound-resolvconf.service 2>/dev/null || true
systemctl enable unbound.service
systemctl restart unbound.service
systemctl restart systemd-resolved.service 2>/dev/null || true
if [ -L /etc/resolv.conf ] || ! cmp -s /etc/resolv.conf /etc/mailstack-resolv.conf; then
  rm -f /etc/resolv.conf
  cp /etc/mailstack-resolv.conf /etc/resolv.conf
fi

# The instance profile's credentials can take a little while to appear after boot.
for attempt in $(seq 1 60); do
  if "$sbin/mailstack-sync" --no-reload; then break; fi
  if [ "$attempt" -eq 60 ]; then
    log "could not install the runtime files from SSM; the daemons stay stopped"
    exit 1
  fi
  sleep 10
done

# After the sync, which brings the certificate's key and names.
"$sbin/mailstack-certificate" --self-signed

# Global scripts: Dovecot cannot compile them itself in a directory only root may write.
sievec /etc/dovecot/sieve

systemctl daemon-reload
systemctl enable nftables.service
systemctl restart nftables.service
systemctl enable --now redis-server.service rspamd.service dovecot.service postfix.service \
  nginx.service fail2ban.service mailstack-sync.timer mailstack-certificate.timer mailstack-backup.timer
"$sbin/mailstack-certificate" || log "no certificate from Let's Encrypt yet (DNS may not resolve yet); the timer retries"
log "done"
