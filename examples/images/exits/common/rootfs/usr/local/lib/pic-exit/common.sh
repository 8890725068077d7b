# Shared by every pic exit image (sourced by its start script and its health probe).
#
# An exit receives, on eth0 (its only Docker network, the cell network), packets the cell host
# steers to it: source a service's address, any destination. It sends them on through its
# connection and never back out of eth0. What leaves eth0 is only: the connection's own transport
# (added by the start script with exit_allow_transport), answers to the cell network, and nothing
# else. Everything here runs before the connection exists, so the container is closed from its
# first second, and stays closed when the connection goes away.

# shellcheck shell=sh

PIC_EXIT_CONFIG=${PIC_CONNECTION_CONFIG:-/run/pic/connection/config}
PIC_EXIT_RUN=/run/pic-exit

exit_log() { printf 'pic-exit: %s\n' "$*" >&2; }
exit_fail() { exit_log "$*"; exit 1; }

# The cell network as eth0 sees it: its subnet and the gateway (the cell host's bridge address).
exit_read_cell_network() {
  CELL_SUBNET=$(ip -4 route show dev eth0 scope link | awk 'NR == 1 { print $1 }')
  CELL_GATEWAY=$(ip -4 route show default dev eth0 | awk 'NR == 1 { print $3 }')
  EXIT_ADDRESS=$(ip -4 -o address show dev eth0 | awk 'NR == 1 { sub(/\/.*/, "", $4); print $4 }')
  [ -n "$CELL_SUBNET" ] || exit_fail "eth0 has no IPv4 subnet: the exit must be attached to the cell network"
  if [ -z "$CELL_GATEWAY" ]; then
    # A restart inside a running namespace finds the default route already taken away: the
    # gateway was written down the first time.
    CELL_GATEWAY=$(cat "$PIC_EXIT_RUN/gateway" 2>/dev/null || true)
  fi
  [ -n "$CELL_GATEWAY" ] || exit_fail "eth0 has no default gateway: cannot reach the connection's server"
  mkdir -p "$PIC_EXIT_RUN"
  chmod 0700 "$PIC_EXIT_RUN"
  echo "$CELL_GATEWAY" >"$PIC_EXIT_RUN/gateway"
}

# Closed by default: nothing is forwarded, nothing of the exit's own leaves eth0 except to the
# cell network. The connection's interface and transport are opened later, one rule each.
# Docker's own nat rules for its embedded DNS (127.0.0.11) are left alone.
exit_lockdown() {
  iptables -P FORWARD DROP
  iptables -F FORWARD
  iptables -P OUTPUT DROP
  iptables -F OUTPUT
  iptables -A OUTPUT -o lo -j ACCEPT
  iptables -A OUTPUT -o eth0 -d "$CELL_SUBNET" -j ACCEPT
  # Never anything from eth0 back out of eth0, whatever a later rule says.
  iptables -A FORWARD -i eth0 -o eth0 -j DROP
  exit_forget_connections
}

# Docker connects eth0 before this script runs, and the cell host may steer packets to it at once:
# until exit_lockdown, the namespace forwards them back out of eth0 and conntrack records each flow
# without NAT. NAT is decided only when a flow's entry is made, so a flow that keeps sending (a
# ping, a fixed-port UDP or TCP flow) would keep that entry fresh and never be masqueraded, nor
# redirected, even once the tunnel is up. Forgotten here, after the lockdown: from now on a
# forwarded packet is dropped before its entry is confirmed, so the next entry a flow gets is made
# by the rules the start script adds.
exit_forget_connections() {
  conntrack -F 2>/dev/null || exit_fail "cannot flush the connection tracking table (conntrack -F)"
}

# Sends the cell's packets, and the exit's own, into `dev`, masqueraded to the tunnel's address.
# Answers come back only for connections the cell opened.
# The MASQUERADE comes first: a packet forwarded before it would make an entry without NAT.
exit_forward_into() {
  dev=$1
  iptables -t nat -A POSTROUTING -o "$dev" -j MASQUERADE
  iptables -A FORWARD -i eth0 -o "$dev" -j ACCEPT
  iptables -A FORWARD -i "$dev" -o eth0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  iptables -A OUTPUT -o "$dev" -j ACCEPT
}

# One transport flow of the connection itself (to its server) may leave eth0: proto, address, port.
exit_allow_transport() {
  iptables -A OUTPUT -o eth0 -p "$1" -d "$2" --dport "$3" -j ACCEPT
}

# Every DNS query that arrives on eth0, whatever server it was sent to, is answered by the exit's
# own resolver on port `port` (53 by default). The cell host may also rewrite the destination to
# this address; either way the query never leaves except through the connection.
exit_capture_dns() {
  port=${1:-53}
  iptables -t nat -A PREROUTING -i eth0 -p udp --dport 53 -j REDIRECT --to-ports "$port"
  iptables -t nat -A PREROUTING -i eth0 -p tcp --dport 53 -j REDIRECT --to-ports "$port"
}

# dnsmasq on 0.0.0.0:53 forwarding to the given servers (reached through the connection's
# default route, so through the tunnel). Without servers it refuses every query rather than ask
# anyone outside. Sets DNS_PID.
exit_start_dnsmasq() {
  servers=''
  for s in "$@"; do servers="$servers --server=$s"; done
  [ -n "$servers" ] || exit_log "the connection names no DNS server: name queries are refused"
  # shellcheck disable=SC2086
  exit_run_dnsmasq $servers
}

# The same with the servers in a file of "server=a.b.c.d" lines, read again on SIGHUP.
exit_start_dnsmasq_file() {
  exit_run_dnsmasq "--servers-file=$1"
}

exit_run_dnsmasq() {
  dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll --user=nobody --group=nogroup \
    --pid-file= --log-facility=- --cache-size=1000 --port=53 "$@" &
  DNS_PID=$!
}

# Opens a TCP connection to host:port within `seconds` (through the exit's own default route,
# that is, through the connection). 0 when it opened.
exit_tcp_probe() {
  target=$1 seconds=${2:-5}
  host=${target%:*} port=${target##*:}
  [ -n "$host" ] && [ -n "$port" ] && [ "$host" != "$target" ] || { exit_log "health_check '$target' is not host:port"; return 1; }
  nc -w "$seconds" "$host" "$port" </dev/null >/dev/null 2>&1
}

# PID 1 stops its children on SIGTERM and exits 0; when one of them dies on its own, or `check`
# fails, it exits 1 so that Docker's restart policy and pic's readiness see the connection gone.
exit_supervise() {
  check=$1
  shift
  children="$*"
  trap 'for p in $children; do kill "$p" 2>/dev/null || true; done; exit 0' TERM INT
  while :; do
    sleep 2 &
    wait $! || true
    for p in $children; do
      kill -0 "$p" 2>/dev/null || { exit_log "process $p ended: the connection is down, stopping the exit"; for q in $children; do kill "$q" 2>/dev/null || true; done; exit 1; }
    done
    $check || { exit_log "the connection is gone, stopping the exit"; for q in $children; do kill "$q" 2>/dev/null || true; done; exit 1; }
  done
}
