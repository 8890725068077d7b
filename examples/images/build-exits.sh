#!/usr/bin/env bash
# Builds the images of the example catalog's connectivity exits (the services a Connection runs)
# from Debian packages, reproducibly, and loads them into the local Docker engine:
#
#   pic-exit-wireguard  wireguard_ext: wireguard-go and wg (wireguard-go, wireguard-tools)
#   pic-exit-openvpn    openvpn: Debian's openvpn client
#   pic-exit-proxy      proxy: redsocks towards a SOCKS5 or HTTP CONNECT proxy, unbound for DNS over it
#   pic-exit-tor        tor: Debian's tor with TransPort and DNSPort (tor)
#   pic-exit-sshuttle   sshuttle: sshuttle over ssh (sshuttle, openssh-client), with the python3
#                       interpreter and only the standard-library modules sshuttle imports
#
# Every exit also has ip (iproute2), iptables-nft (iptables) with its extensions, conntrack
# (conntrack) and dnsmasq (dnsmasq-base), busybox-static for the shell, and
# examples/images/exits/{common,<exit>}/rootfs.
# One layer, fixed owners, modes and times (debian-image.sh): the same packages give the same
# image ID, which examples/store/services/exit-<exit>/ pins.
#
#   build-exits.sh [--pin] [EXIT...]
#
# Without --pin, fails when a built image differs from the digest its catalog folder pins; with
# --pin, writes the new digests there. Prints one line per image: "<tag> sha256:<id>".
# Nothing here creates containers, networks or volumes.
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022

readonly VERSION=1.0.0 EPOCH=1970-01-01T00:00:00Z PREFIX=git.pic.ngo/roof/pic-exit-
readonly ALL_EXITS=(wireguard openvpn proxy tor sshuttle)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE BUSYBOX=${BUSYBOX:-/bin/busybox} STORE=$HERE/../store/services
die() { printf 'build-exits.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=debian-image.sh
source "$HERE/debian-image.sh"

pin=0
exits=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --pin) pin=1; shift ;;
    -h | --help) sed -n '2,19s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) die "unknown argument '$1'" ;;
    *) [[ " ${ALL_EXITS[*]} " == *" $1 "* ]] || die "unknown exit '$1' (known: ${ALL_EXITS[*]})"; exits+=("$1"); shift ;;
  esac
done
[[ ${#exits[@]} -gt 0 ]] || exits=("${ALL_EXITS[@]}")

command -v docker >/dev/null || die "docker is not installed"
[[ -x $BUSYBOX ]] || die "$BUSYBOX not found: apt-get install busybox-static"
need() {
  local bin=$1 package=$2
  [[ -x $bin ]] || die "$bin not found: apt-get install $package"
}
need /usr/sbin/xtables-nft-multi iptables
need /usr/sbin/dnsmasq dnsmasq-base
need /usr/sbin/conntrack conntrack

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pic-exit-images.XXXXXX")
readonly TMP
trap 'rm -rf "$TMP"' EXIT

stage_common() {
  local stage=$1
  base_stage "$stage" "$BUSYBOX"
  stage_ip_and_iptables "$stage"
  put_with_libraries "$stage" /usr/sbin/dnsmasq
  put_with_libraries "$stage" /usr/sbin/conntrack
  IMG_PACKAGES="iproute2=$(package_version iproute2) iptables=$(package_version iptables) dnsmasq-base=$(package_version dnsmasq-base) conntrack=$(package_version conntrack)"
}

stage_wireguard() {
  need /usr/bin/wireguard-go wireguard-go
  need /usr/bin/wg wireguard-tools
  put_with_libraries "$1" /usr/bin/wireguard-go
  put_with_libraries "$1" /usr/bin/wg
  mkdir -p "$1/var/run/wireguard"
  IMG_PACKAGES+=" wireguard-go=$(package_version wireguard-go) wireguard-tools=$(package_version wireguard-tools)"
}

stage_openvpn() {
  need /usr/sbin/openvpn openvpn
  put_with_libraries "$1" /usr/sbin/openvpn
  IMG_PACKAGES+=" openvpn=$(package_version openvpn)"
}

stage_proxy() {
  need /usr/sbin/redsocks redsocks
  need /usr/sbin/unbound unbound
  put_with_libraries "$1" /usr/sbin/redsocks
  put_with_libraries "$1" /usr/sbin/unbound
  IMG_PACKAGES+=" redsocks=$(package_version redsocks) unbound=$(package_version unbound)"
}

stage_tor() {
  need /usr/sbin/tor tor
  put_with_libraries "$1" /usr/sbin/tor
  # tor drops to this user after binding its ports; the exit lets only its packets leave eth0.
  printf 'debian-tor:x:101:101:tor:/nonexistent:/bin/false\n' >>"$1/etc/passwd"
  printf 'debian-tor:x:101:\n' >>"$1/etc/group"
  IMG_PACKAGES+=" tor=$(package_version tor)"
}

# sshuttle is Python: the interpreter, sshuttle's package (as sources: its client sends the server
# part to the remote as text), and the standard-library modules that sshuttle's client, firewall
# and nat method import, found by Python's own modulefinder (static imports, followed through the
# standard library; lazy imports inside functions included). Sources only, no bytecode caches.
stage_sshuttle() {
  local stage=$1 python pydir sshuttle_dir file
  need /usr/bin/sshuttle sshuttle
  need /usr/bin/ssh openssh-client
  python=$(readlink -f /usr/bin/python3) || die "/usr/bin/python3 not found: apt-get install python3"
  [[ $python == /usr/bin/python3.* ]] || die "/usr/bin/python3 is not Debian's python3 ($python)"
  pydir=/usr/lib/$(basename "$python")
  sshuttle_dir=/usr/lib/python3/dist-packages/sshuttle
  [[ -d $sshuttle_dir ]] || die "$sshuttle_dir not found: apt-get install sshuttle"
  put_with_libraries "$stage" "$python"
  ln -s "$(basename "$python")" "$stage/usr/bin/python3"
  put_with_libraries "$stage" /usr/bin/ssh
  mkdir -p "$stage$sshuttle_dir/methods"
  for file in "$sshuttle_dir"/*.py "$sshuttle_dir"/methods/*.py; do
    install -m 0644 "$file" "$stage$file"
  done
  while IFS= read -r file; do
    case $file in
      "$pydir"/*.so) put_with_libraries "$stage" "$file" ;;
      "$pydir"/*) mkdir -p "$stage$(dirname "$file")"; install -m 0644 "$file" "$stage$file" ;;
      "$sshuttle_dir"/*) ;;
      *) die "sshuttle imports $file, outside $pydir" ;;
    esac
  done < <(LC_ALL=C "$python" -S - "$sshuttle_dir" <<'PY' | sort -u
import modulefinder, sys
sys.path.append('/usr/lib/python3/dist-packages')
finder = modulefinder.ModuleFinder(excludes=['tkinter', 'test', 'unittest', 'pydoc', 'doctest', 'lib2to3', 'idlelib', 'ensurepip', 'distutils', 'setuptools', 'pkg_resources'])
for name in ['site', 'sshuttle.cmdline', 'sshuttle.client', 'sshuttle.firewall', 'sshuttle.server', 'sshuttle.methods.nat',
             'encodings.utf_8', 'encodings.latin_1', 'encodings.ascii', 'encodings.idna']:
    finder.import_hook(name)
for module in finder.modules.values():
    if module.__file__:
        print(module.__file__)
PY
  )
  IMG_ENV=(PYTHONDONTWRITEBYTECODE=1)
  IMG_PACKAGES+=" sshuttle=$(package_version sshuttle) openssh-client=$(package_version openssh-client) python3=$(package_version python3)"
}

# The digest examples/store/services/exit-<exit>/ pins for the image, or nothing.
pinned_digest() {
  local exit=$1
  cat "$STORE/exit-$exit/manifest.json" "$STORE/exit-$exit/compose-template.yml" 2>/dev/null |
    grep -oE "${PREFIX//./\\.}$exit@sha256:[0-9a-f]{64}" | sed 's/.*@//' | sort -u
}

write_pins() {
  local exit=$1 id=$2 file
  for file in "$STORE/exit-$exit/manifest.json" "$STORE/exit-$exit/compose-template.yml"; do
    [[ -f $file ]] || die "${file#"$HERE"/../} is missing"
    sed -i -E "s#(${PREFIX//./\\.}$exit)(@sha256:[0-9a-f]{64}|:[A-Za-z0-9._-]+)#\\1@$id#g" "$file"
  done
}

# What every exit holds is staged once and copied into each exit's stage (links and modes kept).
stage_common "$TMP/common"
readonly COMMON_PACKAGES=$IMG_PACKAGES

failed=0
for exit in "${exits[@]}"; do
  stage=$TMP/$exit/stage
  mkdir -p "$stage"
  cp -a "$TMP/common/." "$stage/"
  IMG_PACKAGES=$COMMON_PACKAGES
  IMG_ENV=()
  "stage_$exit" "$stage"
  cp -a --no-preserve=ownership "$HERE/exits/common/rootfs/." "$stage/"
  cp -a --no-preserve=ownership "$HERE/exits/$exit/rootfs/." "$stage/"
  IMG_TITLE=pic-exit-$exit IMG_VERSION=$VERSION IMG_PACKAGES_LABEL=ngo.pic.image.packages
  IMG_CMD=(/usr/local/bin/pic-exit-start) IMG_LABELS='' IMG_CREATED_BY="examples/images/build-exits.sh $exit"
  load_stage "$stage" "$TMP/$exit" "$PREFIX$exit:$VERSION"
  if [[ $pin -eq 1 ]]; then
    write_pins "$exit" "$LOADED_ID"
    printf '%s %s pinned in exit-%s\n' "$PREFIX$exit:$VERSION" "$LOADED_ID" "$exit"
  elif [[ $(pinned_digest "$exit") != "$LOADED_ID" ]]; then
    printf '%s %s PIN MISMATCH: exit-%s pins %s\n' "$PREFIX$exit:$VERSION" "$LOADED_ID" "$exit" "$(pinned_digest "$exit" | tr '\n' ' ')" >&2
    failed=1
  else
    printf '%s %s\n' "$PREFIX$exit:$VERSION" "$LOADED_ID"
  fi
done
[[ $failed -eq 0 ]] || die "the images above differ from their pins; if intended, run examples/images/build-exits.sh --pin and commit"
