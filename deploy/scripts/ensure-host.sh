#!/usr/bin/env bash
# Install what pic's demo and tests need on a fresh Debian machine and make sure dockerd runs.
# Idempotent: every step is skipped when its result is already there.
#   ensure-host.sh node     npm packages only
#   ensure-host.sh all      npm packages, Debian packages, dockerd
set -euo pipefail
cd "$(dirname "$0")/../.."
what=${1:-all}

log() { printf '[ensure-host] %s\n' "$*" >&2; }

if [ -L node_modules ]; then
  # A checkout that borrows another's packages (a git worktree linking node_modules): npm ci here
  # would empty the folder the link points to, under every other checkout using it.
  if [ ! -x node_modules/.bin/tsc ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "node_modules links to $(readlink -f node_modules), which is older than package-lock.json: not reinstalling through the link; run npm ci where it lives"
  fi
elif [ ! -x node_modules/.bin/tsc ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # Exactly the locked versions. The lock records every platform's optional binaries (jest's
  # resolver bindings among them), which `npm ci` needs to accept it.
  log "installing npm packages (npm ci from package-lock.json)"
  npm ci --no-fund --no-audit --loglevel=error
fi
[ "$what" = node ] && exit 0

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
packages=(docker.io caddy bind9-utils bind9-dnsutils busybox-static iptables docker-registry docker-compose iproute2 wireguard-go wireguard-tools curl prometheus
  dnsmasq-base conntrack openvpn redsocks unbound sshuttle tor microsocks openssh-server openssh-client python3
  python3-radicale python3-bcrypt apache2-bin apache2-utils media-types litmus
  postfix dovecot-core dovecot-imapd dovecot-lmtpd libsasl2-modules openssl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  # The mail image copies Postfix out of its package: no configuration of the host's own.
  if [[ " ${missing[*]} " == *" postfix "* ]]; then
    echo 'postfix postfix/main_mailer_type select No configuration' | $SUDO debconf-set-selections
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts its own Prometheus on every address (:9090); the tests only need the binary and
  # start theirs on loopback.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
  # The exit images copy tor, openvpn, redsocks, unbound, sshuttle, ssh and python3 out of their
  # packages, the mail image Postfix and Dovecot, and the exit tests start their own daemons (sshd among them) in network namespaces:
  # the system's own daemons are not wanted.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    for unit in tor openvpn redsocks unbound ssh postfix dovecot; do
      package=${unit/ssh/openssh-server}
      [[ " ${missing[*]} " != *" ${package/dovecot/dovecot-core} "* ]] || $SUDO systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
  fi
fi

sock=/var/run/docker.sock
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    $SUDO systemctl start docker
  else
    $SUDO bash -c 'nohup dockerd >/var/log/pic-dockerd.log 2>&1 &'
  fi
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { log "dockerd did not come up; see /var/log/pic-dockerd.log"; exit 1; }
fi
log "host ready: $(docker version --format 'docker {{.Server.Version}}')"
