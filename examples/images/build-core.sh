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

command -v docker >/dev/null || die "docker is not installed"
[[ -x $BUSYBOX ]] || die "$BUSYBOX not found: apt-get install busybox-static"
for bin in /usr/bin/caddy /usr/bin/wireguard-go /usr/bin/wg /usr/sbin/xtables-nft-multi; do
  [[ -x $bin ]] || die "$bin not found: apt-get install caddy wireguard-go wireguard-tools iptables iproute2"
done
IP_BIN=$(command -v ip) || die "ip not found: apt-get install iproute2"
IP_BIN=$(readlink -f "$IP_BIN")

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

json_string() { local s=$1; s=${s//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }
json_array() { local out='' item; for item in "$@"; do out+=${out:+,}$(json_string "$item"); done; printf '[%s]' "$out"; }

# Copies a file into the stage at `target` (default: its own path), following symlinks.
put() {
  local stage=$1 source=$2 target=${3:-$2}
  mkdir -p "$stage/$(dirname "$target")"
  cp -L "$source" "$stage/$target"
  chmod 0755 "$stage/$target"
}

put_with_libraries() {
  local stage=$1 source=$2 target=${3:-$2} lib
  put "$stage" "$source" "$target"
  while read -r lib; do put "$stage" "$lib"; done < <(ldd "$source" 2>/dev/null | sed -n 's/^[^/]*\(\/[^ ]*\) (0x.*/\1/p' | sort -u)
}

base_stage() {
  local stage=$1 applet
  mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,tmp,root,run,var}
  put "$stage" "$BUSYBOX" /bin/busybox
  while IFS= read -r applet; do
    case $applet in linuxrc | bin/busybox | */*/*/* | *ip | *iptables*) continue ;; esac
    [[ -e $stage/$applet || -L $stage/$applet ]] || ln -s /bin/busybox "$stage/$applet"
  done < <("$BUSYBOX" --list-full)
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$stage/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$stage/etc/group"
  printf 'hosts: files dns\n' >"$stage/etc/nsswitch.conf"
}

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
  local stage=$1 name ext
  put_with_libraries "$stage" /usr/bin/wireguard-go
  put_with_libraries "$stage" /usr/bin/wg
  put_with_libraries "$stage" "$IP_BIN" /usr/sbin/ip
  put_with_libraries "$stage" /usr/sbin/xtables-nft-multi
  for name in iptables iptables-restore iptables-save; do ln -s xtables-nft-multi "$stage/usr/sbin/$name"; done
  for ext in /usr/lib/x86_64-linux-gnu/xtables/*.so; do put_with_libraries "$stage" "$ext"; done
  mkdir -p "$stage/var/run/wireguard"
  IMG_CMD=(/usr/local/bin/pic-wireguard-start)
  IMG_ENV=()
  IMG_PACKAGES="wireguard-go=$(dpkg-query -W -f '${Version}' wireguard-go 2>/dev/null || echo unknown) wireguard-tools=$(dpkg-query -W -f '${Version}' wireguard-tools 2>/dev/null || echo unknown)"
}

build() {
  local image=$1 stage=$TMP/$1/stage dir=$TMP/$1 diff config_id tag label_json
  mkdir -p "$dir"
  base_stage "$stage"
  "stage_$image" "$stage"
  cp -a --no-preserve=ownership "$HERE/core/$image/rootfs/." "$stage/"
  find "$stage" -type d -exec chmod 0755 {} +
  chmod 1777 "$stage/tmp"
  tar --sort=name --mtime=@0 --numeric-owner --owner=0 --group=0 --format=gnu --no-acls --no-xattrs --no-selinux \
    -C "$stage" -cf "$dir/layer.tar" .
  diff=$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)
  label_json=$(json_string org.opencontainers.image.title):$(json_string "pic-core-$image")
  label_json+=,$(json_string org.opencontainers.image.version):$(json_string "$VERSION")
  label_json+=,$(json_string ngo.pic.core.packages):$(json_string "$IMG_PACKAGES")
  local l
  for l in "${labels[@]}"; do label_json+=,$(json_string "${l%%=*}"):$(json_string "${l#*=}"); done
  printf '{"architecture":"amd64","config":{"Cmd":%s,"Env":%s,"Labels":{%s}},"created":"%s","history":[{"created":"%s","created_by":"examples/images/build-core.sh %s"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$(json_array "${IMG_CMD[@]}")" "$(json_array PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${IMG_ENV[@]}")" \
    "$label_json" "$EPOCH" "$EPOCH" "$image" "$diff" >"$dir/config.json"
  config_id=$(sha256sum "$dir/config.json" | cut -d' ' -f1)
  tag=$prefix$image:$VERSION
  if [[ $(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true) != "sha256:$config_id" ]]; then
    mkdir -p "$dir/archive/$diff"
    mv "$dir/layer.tar" "$dir/archive/$diff/layer.tar"
    cp "$dir/config.json" "$dir/archive/$config_id.json"
    printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$config_id" "$tag" "$diff" >"$dir/archive/manifest.json"
    tar -C "$dir/archive" -cf "$dir/image.tar" manifest.json "$config_id.json" "$diff"
    docker load -q -i "$dir/image.tar" >/dev/null
  fi
  printf '%s sha256:%s\n' "$tag" "$config_id"
}

for image in caddy dns wireguard; do build "$image"; done
