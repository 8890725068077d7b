#!/bin/sh
# Radicale (CalDAV and CardDAV) on port 5232. Accounts are "NAME:BCRYPT" lines in
# $CAL_DATA/users, which Radicale reads at every login, so cal-account's changes apply at once.
# Each person's calendars and address books are under $CAL_DATA/collections/collection-root/NAME.
. /usr/local/lib/pic/account-store.sh

data=${CAL_DATA:-/data/calendar}
if [ ! -w "$data" ]; then echo "calendar: $data is not writable by uid $(id -u)" >&2; exit 1; fi
STORE_LOCK=$data/users.lock
store_clear_stale_lock
if [ ! -e "$data/users" ]; then (umask 077 && : >"$data/users") || exit 1; fi
mkdir -p "$data/collections" || exit 1
echo "calendar: Radicale on port 5232, $(cut -d: -f1 "$data/users" | grep -c .) account(s)" >&2
exec python3 -m radicale --config /etc/radicale/config \
	--auth-htpasswd-filename "$data/users" --storage-filesystem-folder "$data/collections"
