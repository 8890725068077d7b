#!/usr/bin/env bash
# Builds the images of the cell's core stack from Debian packages, reproducibly, and loads them
# into the local Docker engine:
#
#   pic-core-caddy      Debian's caddy, booted with only its admin API (core/caddy/rootfs)
#   pic-core-dns        BIND's named from Debian's bind9, authoritative for the cell domain
#   pic-core-wireguard  wireguard-go and wg (wireguard-go, wireguard-tools), ip (iproute2) and
#                       iptables-nft (iptables) with its extensions
#
# Each image is one layer: busybox-static and its applets, the package binaries with the shared
# libraries ldd lists (at the same paths), and core/<image>/rootfs. Tar entries have fixed owners,
# modes and times and the config a fixed creation time, so the same packages give the same image
# ID (the sha256 of the config), which a Cell pins as image@sha256:<id>... or by tag.
#
#   build-core.sh [--prefix REPO_PREFIX] [--label KEY=VALUE]...
#
# Prints one line per image: "<tag> sha256:<id>". bind9 is taken from the installed package when
# there is one, else fetched with `apt-get download` (no daemon is installed on the host).
# Nothing here creates containers, networks or volumes.
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022

prefix=git.pic.ngo/roof/pic-core-
labels=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --prefix) prefix=$2; shift 2 ;;
    --label) [[ $2 =~ ^[A-Za-z0-9._/-]+=[A-Za-z0-9._/:-]*$ ]] || { echo "build-core.sh: bad label '$2'" >&2; exit 2; }; labels+=("$2"); shift 2 ;;
    -h | --help) sed -n '2,20s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "build-core.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

readonly VERSION=1.0.0 EPOCH=1970-01-01T00:00:00Z
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE BUSYBOX=${BUSYBOX:-/bin/busybox}
die() { printf 'build-core.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=debian-image.sh
source "$HERE/debian-image.sh"

command -v docker >/dev/null || die "docker is not installed"
[[ -x $BUSYBOX ]] || die "$BUSYBOX not found: apt-get install busybox-static"
for bin in /usr/bin/caddy /usr/bin/wireguard-go /usr/bin/wg /usr/sbin/xtables-nft-multi; do
  [[ -x $bin ]] || die "$bin not found: apt-get install caddy wireguard-go wireguard-tools iptables iproute2"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pic-core-images.XXXXXX")
readonly TMP
trap 'rm -rf "$TMP"' EXIT

# A fetched bind9 package is kept in .tmp/debs/ of the checkout (ignored by git) and used again
# while it matches the installed bind9-libs, so a rebuild needs no download.
NAMED=/usr/sbin/named
if [[ ! -x $NAMED ]]; then
  DEBS=$(cd "$HERE/../.." && pwd)/.tmp/debs
  libs=$(dpkg-query -W -f '${Version}' bind9-libs 2>/dev/null || true)
  deb=$DEBS/bind9_${libs//:/%3a}_amd64.deb
  if [[ -z $libs || ! -s $deb ]]; then
    mkdir -p "$DEBS"
    (cd "$TMP" && apt-get download bind9 >/dev/null 2>&1) || die "cannot fetch bind9 with apt-get download"
    fetched=$(ls "$TMP"/bind9_*.deb)
    deb=$DEBS/$(basename "$fetched")
    mv "$fetched" "$deb"
  fi
  dpkg-deb -x "$deb" "$TMP/bind9"
  NAMED=$TMP/bind9/usr/sbin/named
fi

stage_caddy() {
  put_with_libraries "$1" /usr/bin/caddy
  mkdir -p "$1/data" "$1/config" "$1/run/caddy-admin"
  IMG_CMD=(/usr/bin/caddy run --resume --config /etc/caddy/Caddyfile --adapter caddyfile)
  IMG_ENV=(HOME=/tmp XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data)
  IMG_PACKAGES="caddy=$(dpkg-query -W -f '${Version}' caddy 2>/dev/null || echo unknown)"
}

stage_dns() {
  put_with_libraries "$1" "$NAMED" /usr/sbin/named
  mkdir -p "$1/var/cache/bind" "$1/zones"
  IMG_CMD=(/usr/local/bin/pic-dns-start)
  IMG_ENV=()
  IMG_PACKAGES="bind9=$(dpkg-query -W -f '${Version}' bind9-libs 2>/dev/null || echo unknown)"
}

stage_wireguard() {
  local stage=$1
  put_with_libraries "$stage" /usr/bin/wireguard-go
  put_with_libraries "$stage" /usr/bin/wg
  stage_ip_and_iptables "$stage"
  mkdir -p "$stage/var/run/wireguard"
  IMG_CMD=(/usr/local/bin/pic-wireguard-start)
  IMG_ENV=()
  IMG_PACKAGES="wireguard-go=$(dpkg-query -W -f '${Version}' wireguard-go 2>/dev/null || echo unknown) wireguard-tools=$(dpkg-query -W -f '${Version}' wireguard-tools 2>/dev/null || echo unknown)"
}

build() {
  local image=$1 stage=$TMP/$1/stage dir=$TMP/$1
  mkdir -p "$dir"
  base_stage "$stage" "$BUSYBOX"
  "stage_$image" "$stage"
  cp -a --no-preserve=ownership "$HERE/core/$image/rootfs/." "$stage/"
  IMG_TITLE=pic-core-$image IMG_VERSION=$VERSION IMG_CREATED_BY="examples/images/build-core.sh $image" IMG_LABELS=''
  local l
  for l in "${labels[@]}"; do IMG_LABELS+=${IMG_LABELS:+,}$(json_string "${l%%=*}"):$(json_string "${l#*=}"); done
  load_stage "$stage" "$dir" "$prefix$image:$VERSION"
  printf '%s %s\n' "$prefix$image:$VERSION" "$LOADED_ID"
}

for image in caddy dns wireguard; do build "$image"; done
