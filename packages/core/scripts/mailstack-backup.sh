#!/bin/bash
# usage: mailstack-backup    (back up, then forget --prune by the keep policy)
#        mailstack-restore [--snapshot ID] [--target DIR] [--dry-run] --all|user@domain[/Folder]
#        mailstack-restore --list
# restic reads S3 credentials from the instance role (IMDSv2), the password from SSM.
set -euo pipefail
if [ -z "${MAILSTACK_BACKUP_REPOSITORY:-}" ]; then . /etc/default/mailstack; fi
export RESTIC_REPOSITORY="$MAILSTACK_BACKUP_REPOSITORY" RESTIC_PASSWORD_FILE="$MAILSTACK_RESTIC_PASSWORD_FILE"
export RESTIC_CACHE_DIR="$MAILSTACK_RESTIC_CACHE"
status="$MAILSTACK_BACKUP_STATUS"
read -ra saved <<<"$MAILSTACK_BACKUP_PATHS"
vmail="$MAILSTACK_VMAIL"
log() { echo "mailstack-$*" >&2; }
usage() { sed -n '2,4s/^#//p' "$0" >&2 && exit 2; }

# A failure keeps the last success's record, so monitoring sees how old it is.
failed() {
  local rc=$? last
  [ "$rc" -eq 0 ] && return
  log "backup: FAILED (exit $rc), no new snapshot; restic said why above"
  last="$(sed -n 's/.*"last_success":\({[^}]*}\).*/\1/p' "$status" 2>/dev/null || true)"
  echo "{\"ok\":false,\"last_attempt\":\"$now\",\"last_success\":${last:-null}}" >"$status.new"
  mv "$status.new" "$status"
}

# restic forget's keep options from the keep file, each rebuilt from a line that is exactly
# one of them: any other option there (--option=rclone.program=...) would run what it names.
keep_options() {
  local line n=0
  keep=()
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    if [[ ! "$line" =~ ^--keep-(last|hourly|daily|weekly|monthly|yearly)=([0-9]{1,9})$ ]]; then
      log "backup: $MAILSTACK_BACKUP_KEEP_FILE line $n is not --keep-(last|hourly|daily|weekly|monthly|yearly)=N"
      exit 1
    fi
    keep+=("--keep-${BASH_REMATCH[1]}=${BASH_REMATCH[2]}")
  done <"$MAILSTACK_BACKUP_KEEP_FILE"
}

backup() {
  local out rc=0 keep
  now="$(date -u +%FT%TZ)"
  mkdir -p "$MAILSTACK_STATE"
  trap failed EXIT
  # Before the repository is touched: a run backs up and forgets, or does neither.
  keep_options
  # init refuses a repository that exists, so a failed read never replaces one.
  restic cat config >/dev/null 2>&1 || restic init
  out="$(restic backup --json --quiet -- "${saved[@]}")" || rc=$?
  # 3: files vanished meanwhile (mail leaving the queue); the rest is saved.
  [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || exit "$rc"
  out="$(grep '"message_type":"summary"' <<<"$out")"
  echo "$out"
  restic forget --prune --quiet "${keep[@]}" --
  echo "{\"ok\":true,\"last_attempt\":\"$now\",\"last_success\":{\"time\":\"$now\",${out#\{}}" >"$status.new"
  mv "$status.new" "$status"
}

# Restored files already in place; a message (<name>[:2,<flags>] in new/ or cur/, renamed by
# Dovecot as it is read or flagged) by its name alone.
present() {
  # shellcheck disable=SC2016 # awk's variables
  awk -v stage="$stage" 'function key(p, n) {
      if (!match(p, /\/(new|cur)\/[^\/]*$/)) return p
      n = substr(p, RSTART + 5); sub(/:.*/, "", n); return substr(p, 1, RSTART) "m/" n }
    FILENAME == ARGV[1] { have[key($0)]; next }
    key(substr($0, length(stage) + 1)) in have' \
    <(for p in "${paths[@]}"; do [ ! -e "$p" ] || find "$p" -path "$stage" -prune -o ! -type d -print; done) \
    <(find "$stage" ! -type d)
}

restore() {
  local snapshot=latest target="" dry="" what="" home p all kept resync=(-A '*')
  while [ $# -gt 0 ]; do
    case "$1" in
      --list) exec restic snapshots ;;
      --snapshot) snapshot="$2" && shift ;;
      --target) target="$2" && shift ;;
      --dry-run) dry=1 ;;
      --all) what=all ;;
      -*) what="" && break ;;
      *) what="$1" ;;
    esac
    shift
  done
  if [ "$what" = all ]; then
    paths=("$vmail")
    [ -z "$target" ] || paths=("${saved[@]}")
  elif [[ "$what" =~ ^([^@/]+)@([^@/]+)(/(.+))?$ ]]; then
    home="$vmail/${BASH_REMATCH[2]}/${BASH_REMATCH[1]}/Maildir"
    resync=(-u "${BASH_REMATCH[1]}@${BASH_REMATCH[2]}" "${BASH_REMATCH[4]:-*}")
    case "${BASH_REMATCH[4]}" in
      "") paths=("${home%/*}") ;;
      INBOX) paths=("$home/cur" "$home/new") ;;
      *) p="${BASH_REMATCH[4]}" && paths=("$home/.${p//\//.}") ;;
    esac
  else
    usage
  fi
  set --
  for p in "${paths[@]}"; do set -- "$@" --include "$p"; done

  if [ -n "$target" ]; then
    if [ -n "$dry" ]; then exec restic ls --recursive "$snapshot" "${paths[@]}"; fi
    exec restic restore "$snapshot" --target "$target" "$@"
  fi
  # Restored beside the mail, then hard-linked into place: only what is missing.
  stage="$(mktemp -d -p "$vmail" .mailstack-restore.XXXXXX)"
  trap 'rm -rf "$stage"' EXIT
  restic restore --quiet "$snapshot" --target "$stage" "$@"
  [ -e "$stage$vmail" ] || { log "restore: snapshot $snapshot holds nothing for $what"; exit 1; }
  kept="$(present)"
  all="$(find "$stage" ! -type d | wc -l)"
  p="$(grep -c . <<<"$kept" || true)"
  log "restore: $([ -n "$dry" ] && echo "dry run: would add" || echo adding) $((all - p)) files; keeping $p in place"
  [ -z "$dry" ] || return 0
  [ -z "$kept" ] || xargs -d '\n' rm -f -- <<<"$kept"
  cp -al "$stage$vmail/." "$vmail/"
  for p in "${paths[@]}"; do [ ! -e "$p" ] || chown -R "$MAILSTACK_VMAIL_UID:$MAILSTACK_VMAIL_GID" "$p"; done
  doveadm force-resync "${resync[@]}" ||
    log "restore: doveadm force-resync failed; a stopped Dovecot reads the restored mail when it starts"
}

case "${1:-}" in
  "") backup ;;
  restore) shift && restore "$@" ;;
  *) usage ;;
esac
