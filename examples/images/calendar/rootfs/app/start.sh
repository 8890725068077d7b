#!/bin/sh
# Serves the stand-in calendar on port 5232 (Radicale's port). /dav/<user>/ is the user's
# collection, protected by Basic auth against the htpasswd-style file $CAL_DATA/users;
# cal-account rewrites the rules and tells httpd to reload them.
. /usr/local/lib/pic/account-store.sh

data=${CAL_DATA:-/data/calendar}
if [ ! -w "$data" ]; then echo "calendar: $data is not writable by uid $(id -u)" >&2; exit 1; fi
STORE_FILE=$data/users
STORE_LOCK=$data/users.lock
store_clear_stale_lock
mkdir -p "$data/collections"
store_write_httpd_conf /dav /tmp/httpd.conf || exit 1
echo "calendar: listening on port 5232, $(store_names | wc -l) account(s)" >&2
exec httpd -f -p 5232 -h /www -c /tmp/httpd.conf -r Calendar
