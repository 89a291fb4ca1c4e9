#!/bin/bash
# Mount the mail data volume and bind its directories over the paths the daemons use. Its
# unit runs it at every boot; nothing goes into /etc/fstab.
#
# The device is formatted only when blkid probes it and finds no signature at all (exit
# status 2). A filesystem, a partition table or anything else blkid recognises means the
# volume holds data: it is mounted as it is, or, if it cannot be, left alone with an error.
#
# Settings come from /etc/default/mailstack:
#   MAILSTACK_DATA_VOLUME_ID  EBS volume id, found under /dev/disk/by-id on Nitro instances
#   MAILSTACK_DATA_MOUNT      mount point of the volume
#   MAILSTACK_DATA_BINDS      "dir:target ..." pairs bind-mounted from the volume
#   MAILSTACK_DATA_LABEL      label for a filesystem this script creates
#   MAILSTACK_DATA_XEN_DEVICE where Xen instance types show the volume
# and, for tests only, MAILSTACK_DATA_DEVICE (skip discovery).
set -euo pipefail

if [ -r /etc/default/mailstack ] && [ -z "${MAILSTACK_DATA_MOUNT:-}" ]; then
  . /etc/default/mailstack
fi
mount_point="${MAILSTACK_DATA_MOUNT:?MAILSTACK_DATA_MOUNT is not set}"
label="${MAILSTACK_DATA_LABEL:?MAILSTACK_DATA_LABEL is not set}"

log() { echo "mailstack-data-volume: $*" >&2; }

find_device() {
  if [ -n "${MAILSTACK_DATA_DEVICE:-}" ]; then
    echo "$MAILSTACK_DATA_DEVICE"
    return 0
  fi
  local id="${MAILSTACK_DATA_VOLUME_ID:?MAILSTACK_DATA_VOLUME_ID is not set}"
  local nitro="/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${id//-/}" xen="${MAILSTACK_DATA_XEN_DEVICE:?MAILSTACK_DATA_XEN_DEVICE is not set}"
  # The attachment can lag the instance's boot by a minute or more.
  for _ in $(seq 1 300); do
    if [ -e "$nitro" ]; then readlink -f "$nitro"; return 0; fi
    # Xen instance types (t2) expose the attachment name instead of the volume id.
    if [ -b "$xen" ]; then echo "$xen"; return 0; fi
    sleep 1
  done
  return 1
}

device="$(find_device)" || { log "volume ${MAILSTACK_DATA_VOLUME_ID:-?} is not attached; not mounting"; exit 1; }

if mountpoint -q "$mount_point"; then
  log "$mount_point is already mounted"
else
  set +e
  blkid -p "$device" >/dev/null 2>&1
  probe=$?
  set -e
  case "$probe" in
    0) log "$device holds data; mounting it as it is" ;;
    2)
      log "$device is blank; creating an ext4 filesystem labelled $label"
      mkfs.ext4 -q -L "$label" -m 1 "$device"
      ;;
    *) log "blkid could not probe $device (status $probe); refusing to touch it"; exit 1 ;;
  esac
  fstype="$(blkid -p -s TYPE -o value "$device" || true)"
  if [ -z "$fstype" ]; then
    log "$device holds a partition table or an unknown signature, not a filesystem; mount it by hand"
    exit 1
  fi
  mkdir -p "$mount_point"
  # Swap or LUKS fails here, before anything is mounted or bound.
  mount -t "$fstype" -o noatime "$device" "$mount_point"
fi

# After the volume was grown (dataVolumeGiB raised), grow the filesystem to match; ext4
# grows online, and an already full-size filesystem is left as it is.
if [ "$(findmnt -n -o FSTYPE --target "$mount_point")" = "ext4" ]; then
  resize2fs "$(findmnt -n -o SOURCE --target "$mount_point")" >/dev/null 2>&1 || log "could not grow the filesystem on $mount_point"
fi

for pair in ${MAILSTACK_DATA_BINDS:-}; do
  dir="${pair%%:*}"
  target="${pair#*:}"
  source="$mount_point/$dir"
  mkdir -p "$target"
  if mountpoint -q "$target"; then continue; fi
  if [ ! -e "$mount_point/.seeded-$dir" ]; then
    # A fresh volume starts from what the packages installed (queue layout, empty dirs);
    # a volume that already carries the directory keeps its own content.
    if [ ! -e "$source" ]; then
      mkdir -p "$source"
      cp -a "$target/." "$source/"
    fi
    touch "$mount_point/.seeded-$dir"
  fi
  mount --bind "$source" "$target"
done
log "data volume ready at $mount_point"
