#!/bin/bash
# Installs, from Debian's or Ubuntu's repositories, every program the tests run for real:
# the mail daemons whose rendered configuration they check, and the validators they use.
# Installing does not configure or start anything the tests rely on.
set -euo pipefail
# Root installs directly (a fresh container often has no sudo); anyone else through sudo.
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then exec sudo "$0" "$@"; fi
  echo "run as root: $0 needs apt-get, and sudo is not installed" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix would otherwise ask how to configure itself; the tests bring their own main.cf.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -q
apt-get install -y -q \
  postfix dovecot-imapd dovecot-lmtpd dovecot-pop3d dovecot-sieve \
  rspamd redis-server unbound nftables rsyslog postsrsd \
  python3 python3-boto3 bind9-utils dnsutils knot knot-dnssecutils iproute2 util-linux mount fdisk e2fsprogs openssl \
  shellcheck systemd nginx libxml2-utils restic python3-systemd systemd-journal-remote \
  dovecot-ldap postfix-ldap libsasl2-modules
# The LDAP tests' directory server and its clients; slapd is started by the tests, not configured here.
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
apt-get install -y -q slapd ldap-utils
# No recommends: fail2ban would pull a mail server and python3-systemd, cloud-init a desktop's worth.
apt-get install -y -q --no-install-recommends fail2ban cloud-init
# The boot test: builds a Debian root file system, boots it, and stands in for ACME.
apt-get install -y -q --no-install-recommends systemd-container mmdebstrap pebble
