#!/bin/sh
# Serves /dav/<user>/ from the shared files-data volume on port 8080, each folder protected by
# Basic auth against the account file that cell-files keeps on the shared files-accounts volume.
# Accounts are changed in the other container, so this one checks the file every 2 seconds and
# makes httpd reload its rules (SIGHUP) when it changed.
. /usr/local/lib/pic/account-store.sh

STORE_FILE=${FILES_ACCOUNTS:-/data/accounts}/users
conf=/tmp/httpd.conf

fingerprint() {
	if [ -f "$STORE_FILE" ]; then md5sum <"$STORE_FILE"; else echo none; fi
}

seen=$(fingerprint)
store_write_httpd_conf /dav "$conf" || exit 1
httpd -f -p 8080 -h /www -c "$conf" -r Files &
httpd_pid=$!
trap 'kill "$httpd_pid" 2>/dev/null; exit 0' TERM INT
echo "webdav: listening on port 8080" >&2

while kill -0 "$httpd_pid" 2>/dev/null; do
	now=$(fingerprint)
	if [ "$now" != "$seen" ]; then
		if store_write_httpd_conf /dav "$conf"; then
			kill -HUP "$httpd_pid"
			seen=$now
			echo "webdav: account rules reloaded" >&2
		fi
	fi
	sleep 2 &
	wait $!
done
echo "webdav: httpd exited" >&2
exit 1
