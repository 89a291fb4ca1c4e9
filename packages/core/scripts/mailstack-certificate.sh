#!/bin/bash
# The host's TLS certificate for Postfix and Dovecot, always at the same two paths.
#
#   mailstack-certificate --self-signed   create a bootstrap certificate if there is none,
#                                         so the daemons can start before DNS resolves
#   mailstack-certificate                 obtain a Let's Encrypt certificate (HTTP-01 on
#                                         port 80) unless one is installed; run by a timer
#                                         until it succeeds
#   mailstack-certificate --deploy        certbot's deploy hook: install the renewed
#                                         certificate and reload the daemons
set -euo pipefail
if [ -r /etc/default/mailstack ] && [ -z "${MAILSTACK_HOSTNAME:-}" ]; then
  . /etc/default/mailstack
fi
host="${MAILSTACK_HOSTNAME:?MAILSTACK_HOSTNAME is not set}"
cert="${MAILSTACK_TLS_CERT:?MAILSTACK_TLS_CERT is not set}"
key="${MAILSTACK_TLS_KEY:?MAILSTACK_TLS_KEY is not set}"
live="${MAILSTACK_LETSENCRYPT:-/etc/letsencrypt}/live/$host"

log() { echo "mailstack-certificate: $*" >&2; }

install_pair() {
  local chain="$1" private="$2"
  install -d -m 0755 "$(dirname "$cert")"
  install -m 0600 "$private" "$key.new"
  install -m 0644 "$chain" "$cert.new"
  mv "$key.new" "$key"
  mv "$cert.new" "$cert"
}

reload_daemons() {
  # A renewed certificate is only used once the daemons reload (a common outage otherwise).
  systemctl reload postfix.service dovecot.service || log "reload failed; restart Postfix and Dovecot"
}

case "${1:-}" in
  --self-signed)
    if [ -s "$cert" ] && [ -s "$key" ]; then exit 0; fi
    log "creating a self-signed bootstrap certificate for $host"
    tmp="$(mktemp -d)"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
      -subj "/CN=$host" -addext "subjectAltName=DNS:$host" \
      -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
    install_pair "$tmp/cert.pem" "$tmp/key.pem"
    rm -rf "$tmp"
    ;;
  --deploy)
    lineage="${RENEWED_LINEAGE:-$live}"
    install_pair "$lineage/fullchain.pem" "$lineage/privkey.pem"
    reload_daemons
    log "installed the certificate from $lineage"
    ;;
  "")
    if [ -s "$live/fullchain.pem" ]; then
      if ! cmp -s "$live/fullchain.pem" "$cert"; then
        install_pair "$live/fullchain.pem" "$live/privkey.pem"
        reload_daemons
      fi
      exit 0
    fi
    # --reuse-key keeps the public key across renewals, so a TLSA 3 1 1 record stays valid.
    certbot certonly --standalone --non-interactive --agree-tos \
      --email "${MAILSTACK_ACME_EMAIL:?MAILSTACK_ACME_EMAIL is not set}" \
      --key-type ecdsa --reuse-key --cert-name "$host" -d "$host" \
      --deploy-hook "$0 --deploy"
    ;;
  *)
    echo "usage: $0 [--self-signed|--deploy]" >&2
    exit 2
    ;;
esac
