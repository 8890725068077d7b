# The tor exit's ports and its ControlPort client (sourced by its start script and health probe).

# shellcheck shell=sh

TOR_USER=debian-tor
TOR_TRANS_PORT=9040
TOR_DNS_PORT=5353
TOR_CONTROL_PORT=9051
TOR_DATA=/run/pic-exit-tor
TOR_COOKIE=$TOR_DATA/control_auth_cookie

# Sends the commands (one per argument) to tor's ControlPort after authenticating with its cookie,
# and prints tor's answers (the AUTHENTICATE reply first). 1 when tor is not reachable.
tor_control() {
  [ -r "$TOR_COOKIE" ] || return 1
  cookie=$(od -An -tx1 "$TOR_COOKIE" | tr -d ' \n')
  {
    printf 'AUTHENTICATE %s\r\n' "$cookie"
    for command in "$@"; do printf '%s\r\n' "$command"; done
    printf 'QUIT\r\n'
  } | nc -w 5 127.0.0.1 "$TOR_CONTROL_PORT" | tr -d '\r'
}
