#!/usr/bin/env bash
# Make sure the Debian base image the Dockerfiles start FROM exists locally.
# Order: already present -> pull it -> build it with debootstrap from the
# host's Debian mirror and `docker import` it under the same tag. The last path
# lets the same Dockerfiles build on machines without any registry access
# (air-gapped installs, CI here). Idempotent.
set -euo pipefail

tag=${BASE_TAG:-debian:bookworm-slim}
suite=bookworm

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "bootstrap-base: $tag present" >&2
  exit 0
fi

# A registry that is reachable is preferred: its image gets upstream updates.
# The timeout keeps a black-holed registry from stalling the build.
if [[ ${STREAMSPACE_NO_PULL:-0} != 1 ]] && timeout 60 docker pull -q "$tag" >/dev/null 2>&1; then
  echo "bootstrap-base: pulled $tag" >&2
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "bootstrap-base: $tag cannot be pulled and debootstrap needs root" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

# Find the mirror URI the host's apt uses for a given suite, in either the
# one-line (*.list) or deb822 (*.sources) format.
mirror_for() {
  local want=$1 f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk -v s="$want" '
      $1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == s) { print $i; exit }
      }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    # deb822 stanzas are separated by blank lines: RS="" reads one per record.
    awk -v s="$want" 'BEGIN { RS = "" }
      {
        uri = ""; types = ""; hit = 0
        n = split($0, lines, "\n")
        for (j = 1; j <= n; j++) {
          if (lines[j] ~ /^#/) continue
          split(lines[j], kv, ":[ \t]*")
          key = kv[1]; val = substr(lines[j], length(kv[1]) + 2); sub(/^[ \t]+/, "", val)
          if (key == "Types") types = val
          if (key == "URIs") { split(val, u, /[ \t]+/); uri = u[1] }
          if (key == "Suites") { m = split(val, ss, /[ \t]+/); for (k = 1; k <= m; k++) if (ss[k] == s) hit = 1 }
        }
        if (hit && uri != "" && types ~ /(^|[ \t])deb([ \t]|$)/) { print uri; exit }
      }' "$f"
  done
}

# The host's own sources only: this repository names no mirror.
mirror=${STREAMSPACE_DEBIAN_MIRROR:-$(mirror_for "$suite" | head -n 1)}
security=${STREAMSPACE_DEBIAN_SECURITY_MIRROR:-$(mirror_for "$suite-security" | head -n 1)}
if [[ -z $mirror ]]; then
  echo "bootstrap-base: the host's apt sources name no mirror for $suite; set STREAMSPACE_DEBIAN_MIRROR to one" >&2
  exit 1
fi
echo "bootstrap-base: building $tag with debootstrap from $mirror (security: ${security:-none})" >&2

root=$(mktemp -d /tmp/streamspace-rootfs.XXXXXX)
cleanup() {
  # A failed chroot step may leave /proc mounted; unmount before deleting.
  umount "$root/proc" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT

started=$SECONDS
debootstrap --variant=minbase "$suite" "$root" "$mirror" >/tmp/streamspace-debootstrap.log 2>&1 || {
  tail -n 30 /tmp/streamspace-debootstrap.log >&2
  exit 1
}

{
  echo "deb $mirror $suite main"
  echo "deb $mirror $suite-updates main"
  if [[ -n $security ]]; then echo "deb $security $suite-security main"; fi
} >"$root/etc/apt/sources.list"

# Same footprint rules as the registry's slim image: no docs (but keep the
# copyright files: they are the license record), man pages or translations,
# and no apt caches left in layers built on top.
cat >"$root/etc/dpkg/dpkg.cfg.d/streamspace-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKG
cat >"$root/etc/apt/apt.conf.d/streamspace-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Acquire::GzipIndexes "true";
APT

mount -t proc proc "$root/proc"
chroot "$root" /bin/sh -ec '
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get upgrade -y -qq
  apt-get install -y -qq --no-install-recommends ca-certificates
  apt-get clean
  rm -rf /var/lib/apt/lists/* /usr/share/doc/*/changelog* /usr/share/man/* /usr/share/info/*
' >/tmp/streamspace-debootstrap-post.log 2>&1 || {
  tail -n 30 /tmp/streamspace-debootstrap-post.log >&2
  exit 1
}
umount "$root/proc"
# The container runtime supplies these; the host's copies must not leak in.
: >"$root/etc/resolv.conf"
: >"$root/etc/hostname"

tar --numeric-owner -C "$root" -c . |
  docker import -c 'CMD ["bash"]' -m "debootstrap $suite from $mirror" - "$tag" >/dev/null
echo "bootstrap-base: imported $tag in $((SECONDS - started))s" >&2
