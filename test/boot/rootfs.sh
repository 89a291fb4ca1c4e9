#!/bin/bash
# The boot test's machine image: a Debian 12 root file system built from Debian's packages,
# kept as a tarball in the cache directory and reused while this recipe and the package list
# stay the same. It is what a fresh EC2 instance starts from, nothing of mailstack inside:
# cloud-init installs and writes everything from the user data at first boot. The plan's
# packages are only downloaded here (into apt's cache), so a boot installs them for real
# without fetching them again. As in Ubuntu's image, systemd-networkd applies cloud-init's
# network configuration.
#
# usage: rootfs.sh CACHE_DIR PACKAGE...   prints the tarball's path
set -euo pipefail
cache="$1"
shift
key="$( (cat "$0" && printf '%s\n' "$@") | sha256sum | cut -c1-16)"
tarball="$cache/debian12-$key.tar"
if [ -s "$tarball" ]; then
  echo "$tarball"
  exit 0
fi
mkdir -p "$cache"
# Older images of a previous recipe are of no further use.
rm -f "$cache"/debian12-*.tar "$cache"/debian12-*.tar.partial
mmdebstrap --quiet --variant=minbase --skip=cleanup/apt/cache --format=tar \
  --include=systemd,systemd-sysv,dbus,cloud-init,python3,iproute2,ca-certificates,curl,netbase,udev,procps,locales,openssl \
  --customize-hook='echo "en_US.UTF-8 UTF-8" >"$1/etc/locale.gen" && chroot "$1" locale-gen >/dev/null' \
  --customize-hook='echo "LANG=en_US.UTF-8" >"$1/etc/default/locale"' \
  --customize-hook='echo "datasource_list: [ NoCloud ]" >"$1/etc/cloud/cloud.cfg.d/90-mailstack-boot-test.cfg"' \
  --customize-hook='chroot "$1" systemctl enable systemd-networkd >/dev/null 2>&1' \
  --customize-hook="chroot \"\$1\" apt-get install --download-only --yes --quiet $* >/dev/null" \
  bookworm "$tarball.partial" \
  "deb http://deb.debian.org/debian bookworm main" \
  "deb http://deb.debian.org/debian bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main" >&2
mv "$tarball.partial" "$tarball"
echo "$tarball"
