#!/bin/bash
# usage: mailstack-alert UNIT
# Run by the unit that a mailstack unit names in OnFailure=, with that unit's name: logs one
# line under a fixed tag, which monitoring counts, then mails root (the postmaster, on this
# host) what failed, with the unit's last journal lines: at most once a day per unit, as the
# sync and certificate units run every few minutes and may fail each time for hours.
set -euo pipefail
if [ -z "${MAILSTACK_FAILURE_TAG:-}" ]; then . /etc/default/mailstack; fi
lines=50
unit="${1:-}"
# A unit name, and nothing that could add a header to the mail.
if [[ ! "$unit" =~ ^[A-Za-z0-9][A-Za-z0-9@._:-]*$ ]]; then
  sed -n '2p' "$0" >&2
  exit 2
fi
host="$MAILSTACK_HOSTNAME"
# systemd gives the failed run's result to the unit it starts (MONITOR_*, systemd 251 and later).
result="${MONITOR_SERVICE_RESULT:+ (${MONITOR_SERVICE_RESULT}, status ${MONITOR_EXIT_STATUS:-?})}"

# First, whatever becomes of the mail.
logger -t "$MAILSTACK_FAILURE_TAG" -p daemon.err -- "$unit failed on $host$result"

stamp="$MAILSTACK_STATE/alerted/$unit"
if [ -n "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
  echo "$unit: the postmaster was told less than a day ago; not mailed again"
  exit 0
fi

{
  printf 'To: root\nSubject: %s failed on %s\nAuto-Submitted: auto-generated\n' "$unit" "$host"
  printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n'
  printf '%s failed on %s at %s%s.\n\n' "$unit" "$host" "$(date -u +%FT%TZ)" "$result"
  printf 'Its last %d journal lines:\n\n' "$lines"
  journalctl --no-pager --quiet --output=short-iso --lines="$lines" --unit="$unit" || echo "(journalctl failed)"
  printf '\nOn the host, systemctl status %s and journalctl -u %s tell more.\n' "$unit" "$unit"
} | "$MAILSTACK_SENDMAIL" -i -- root
mkdir -p "$MAILSTACK_STATE/alerted"
touch "$stamp"
