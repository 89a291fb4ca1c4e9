#!/bin/bash
# First-boot setup of the mail host, run by its unit until it succeeds. Every step checks
# before it acts, so running it again is harmless.
set -euo pipefail
# Every setting (paths, commands, units) comes from the file the core renders; exported, so
# that the programs run below see them too (mailstack-sync reads nothing else).
set -a
. /etc/default/mailstack
set +a
# First, cloud-init's policy-rc.d, which kept the package install from starting daemons:
# left behind, it would keep unattended-upgrades from restarting the daemons it upgrades.
rm -f "$MAILSTACK_POLICY_RC_D"
read -ra boot_stop <<<"$MAILSTACK_BOOT_STOP"
read -ra boot_start <<<"$MAILSTACK_BOOT_START"
read -ra boot_reset <<<"$MAILSTACK_BOOT_RESET"

log() { echo "mailstack-bootstrap: $*" >&2; }

# A reboot before this finished started the daemons their packages enabled; stop them until
# the data volume is in place so that no mail lands where an instance replacement loses it.
systemctl stop "${boot_stop[@]}" 2>/dev/null || true
systemctl reset-failed "${boot_reset[@]}" 2>/dev/null || true
# Port 80 belongs to certbot's HTTP-01 responder; mailstack's site listens on 443 only.
rm -f /etc/nginx/sites-enabled/default

getent group vmail >/dev/null || groupadd --system --gid "$MAILSTACK_VMAIL_GID" vmail
getent passwd vmail >/dev/null ||
  useradd --system --uid "$MAILSTACK_VMAIL_UID" --gid vmail --home-dir "$MAILSTACK_VMAIL" \
    --no-create-home --shell /usr/sbin/nologin vmail

# Its unit mounts the volume at every boot from now on; this waits for it to finish.
systemctl enable --now "$MAILSTACK_DATA_VOLUME_UNIT"
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

# Without the runtime files the daemons stay stopped; the unit retries (the instance
# profile's credentials can take a while to appear after boot).
"$MAILSTACK_SYNC_COMMAND" --no-reload

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
# Last: the unit does not run again on this instance.
mkdir -p "$MAILSTACK_STATE"
touch "$MAILSTACK_BOOTSTRAP_DONE"
log "done"
