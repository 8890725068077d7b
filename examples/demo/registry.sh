#!/usr/bin/env bash
# The demo's image registry: Debian's docker-registry on 127.0.0.1 (plain HTTP is fine on
# loopback, for pic and for dockerd alike), storing into DEMO_DIR/registry.
#
#   registry.sh start DEMO_DIR    start it unless it already answers; wait until it does
#   registry.sh stop DEMO_DIR     stop the one started here
#
# PIC_DEMO_REGISTRY (default 127.0.0.1:5000) is where it listens.
set -euo pipefail

readonly ADDRESS=${PIC_DEMO_REGISTRY:-127.0.0.1:5000}
readonly BINARY=${PIC_REGISTRY_BINARY:-/usr/bin/docker-registry}
action=${1:-}
dir=${2:-}
[[ -n $action && -n $dir ]] || { sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }
mkdir -p "$dir/registry"
dir=$(cd "$dir" && pwd)
readonly PID_FILE=$dir/registry/pid

answers() { curl -fsS -o /dev/null "http://$ADDRESS/v2/" 2>/dev/null; }

case $action in
  start)
    if answers; then echo "registry: $ADDRESS answers already"; exit 0; fi
    [[ -x $BINARY ]] || { echo "registry.sh: $BINARY not found: apt-get install docker-registry" >&2; exit 1; }
    cat >"$dir/registry/config.yml" <<CONF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $dir/registry/data}
  delete: {enabled: true}
http: {addr: $ADDRESS}
CONF
    nohup "$BINARY" serve "$dir/registry/config.yml" >"$dir/registry/log" 2>&1 &
    echo $! >"$PID_FILE"
    for _ in $(seq 100); do
      if answers; then echo "registry: started on $ADDRESS (storage $dir/registry/data)"; exit 0; fi
      sleep 0.1
    done
    echo "registry.sh: docker-registry did not answer on $ADDRESS; see $dir/registry/log" >&2
    exit 1
    ;;
  stop)
    if [[ -f $PID_FILE ]]; then
      pid=$(cat "$PID_FILE")
      if kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == docker-registry* ]]; then kill "$pid"; fi
      rm -f "$PID_FILE"
    fi
    ;;
  *) echo "registry.sh: start or stop, not $action" >&2; exit 2 ;;
esac
