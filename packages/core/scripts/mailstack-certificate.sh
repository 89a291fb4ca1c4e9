#!/bin/bash
# The certificate of Postfix, Dovecot and nginx, for the names the stack lists, with Pulumi's key (a
# runtime file) so the TLSA record pinning it outlives renewals and instances.
#   --self-signed  at boot: install the kept certificate if it fits the key, else a self-signed one
#   (no argument)  the timer: certbot never renews --csr certificates, so this asks for one when
#                  there is none, it expires within 30 days, or the names or key changed
set -euo pipefail
if [ -r /etc/default/mailstack ] && [ -z "${MAILSTACK_HOSTNAME:-}" ]; then
  . /etc/default/mailstack
fi
: "${MAILSTACK_HOSTNAME:?}" "${MAILSTACK_TLS_CERT:?}" "${MAILSTACK_TLS_KEY:?}" "${MAILSTACK_TLS_KEY_SOURCE:?}" "${MAILSTACK_CERT_NAMES:?}" "${MAILSTACK_CERT_DIR:?}" "${MAILSTACK_TLS_UNITS:?}"
read -ra tls_units <<<"$MAILSTACK_TLS_UNITS"
cert="$MAILSTACK_TLS_CERT" key="$MAILSTACK_TLS_KEY" source_key="$MAILSTACK_TLS_KEY_SOURCE" dir="$MAILSTACK_CERT_DIR"
kept="$dir/fullchain.pem"

log() { echo "mailstack-certificate: $*" >&2; }

if [ ! -s "$source_key" ] || [ ! -s "$MAILSTACK_CERT_NAMES" ]; then
  log "no $source_key or $MAILSTACK_CERT_NAMES yet (mailstack-sync installs them)"
  exit 1
fi
install -d -m 0700 "$dir"
# The boot run and the timer can overlap; two certbots would fight over port 80.
exec 9>"$dir/lock"
flock 9
tmp=""
trap '[ -z "$tmp" ] || rm -rf "$tmp"' EXIT

wanted() { grep . "$MAILSTACK_CERT_NAMES" | sort -u; }
names() { openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null | sed 1d | tr , '\n' | sed -n 's/^ *DNS://p' | sort -u; }
fits() { [ -s "$1" ] && [ "$(openssl x509 -in "$1" -noout -pubkey 2>/dev/null)" = "$(openssl pkey -in "$source_key" -pubout)" ]; }
valid() { openssl x509 -in "$1" -noout -checkend "$2" >/dev/null; }
until_date() { openssl x509 -in "$1" -noout -enddate | cut -d= -f2; }
request() { openssl req "$@" -key "$source_key" -subj "/CN=$MAILSTACK_HOSTNAME" -addext "subjectAltName=$(wanted | sed 's/^/DNS:/' | paste -sd, -)"; }

reason() {
  if [ ! -s "$kept" ]; then echo "there is none yet"
  elif ! fits "$kept"; then echo "the key changed"
  elif [ "$(names "$kept")" != "$(wanted)" ]; then echo "the names changed"
  elif ! valid "$kept" 2592000; then echo "it expires within 30 days"
  fi
}

# Renames, so no daemon reads half a file.
install_pair() {
  install -d -m 0755 "$(dirname "$cert")" "$(dirname "$key")"
  if ! cmp -s "$source_key" "$key"; then
    install -m 0600 "$source_key" "$key.new"
    mv -f "$key.new" "$key"
  fi
  install -m 0644 "$1" "$cert.new"
  mv -f "$cert.new" "$cert"
}

# certbot refuses to overwrite files: a fresh directory each time, beside $kept for the rename.
obtain() {
  tmp="$(mktemp -d "$dir/new.XXXXXX")"
  request -new -out "$tmp/csr.pem"
  if ! certbot certonly --standalone --non-interactive --agree-tos --email "${MAILSTACK_ACME_EMAIL:?}" \
    --csr "$tmp/csr.pem" --cert-path "$tmp/cert.pem" --chain-path "$tmp/chain.pem" --fullchain-path "$tmp/fullchain.pem"; then
    log "certbot failed (do the names resolve to this host?); the installed certificate stays"
    return 1
  fi
  if ! fits "$tmp/fullchain.pem" || [ "$(names "$tmp/fullchain.pem")" != "$(wanted)" ] || ! valid "$tmp/fullchain.pem" 0; then
    log "certbot's certificate does not match the key and names; the installed certificate stays"
    return 1
  fi
  mv -f "$tmp/fullchain.pem" "$kept"
}

case "${1:-}" in
  --self-signed)
    if fits "$cert" && cmp -s "$source_key" "$key"; then exit 0; fi
    if fits "$kept"; then
      install_pair "$kept"
      log "installed the certificate kept on the data volume, valid until $(until_date "$kept")"
      exit 0
    fi
    log "creating a self-signed bootstrap certificate for $MAILSTACK_HOSTNAME"
    tmp="$(mktemp -d)"
    request -x509 -days 30 -out "$tmp/cert.pem"
    install_pair "$tmp/cert.pem"
    ;;
  "")
    why="$(reason)"
    if [ -n "$why" ]; then
      log "requesting a certificate for $(wanted | paste -sd' ' -): $why"
      obtain
    fi
    if cmp -s "$kept" "$cert" && cmp -s "$source_key" "$key"; then exit 0; fi
    install_pair "$kept"
    # Daemons use a new certificate only after a reload (a common outage otherwise).
    if ! systemctl reload "${tls_units[@]}"; then
      log "installed the certificate, but a reload failed: restart Postfix, Dovecot and nginx"
      exit 1
    fi
    log "installed the certificate valid until $(until_date "$kept"); reloaded Postfix, Dovecot and nginx"
    ;;
  *)
    echo "usage: $0 [--self-signed]" >&2
    exit 2
    ;;
esac
