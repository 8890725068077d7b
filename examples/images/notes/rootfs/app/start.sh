#!/bin/sh
# Starts the notes service: checks its settings, then serves HTTP with one handler process per
# connection (busybox nc -ll forks /app/handler.sh with the socket on stdin and stdout).
. /usr/local/lib/pic/account-store.sh

port=${NOTES_PORT:-8080}
case $port in '' | *[!0-9]*) echo "notes: NOTES_PORT must be a number, got '$port'" >&2; exit 2 ;; esac
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then echo "notes: NOTES_PORT $port is out of range" >&2; exit 2; fi
case ${NOTES_REGISTRATION:-false} in true | false) ;; *) echo "notes: NOTES_REGISTRATION must be true or false" >&2; exit 2 ;; esac
case ${NOTES_LANGUAGE:-en} in '' | *[!A-Za-z-]*) echo "notes: NOTES_LANGUAGE must be a language tag such as en or pt-BR" >&2; exit 2 ;; esac

data=${NOTES_DATA:-/data/notes}
if [ ! -w "$data" ]; then echo "notes: $data is not writable by uid $(id -u)" >&2; exit 1; fi
STORE_LOCK=$data/accounts.lock
store_clear_stale_lock

echo "notes: listening on port $port, accounts in $data/accounts" >&2
exec nc -ll -p "$port" -e /app/handler.sh
