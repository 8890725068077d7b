#!/bin/sh
# Serves the stand-in file manager page on port 8080. Accounts are managed with files-account.
. /usr/local/lib/pic/account-store.sh

for dir in "${FILES_DATA:-/data/files}" "${FILES_ACCOUNTS:-/data/accounts}"; do
	if [ ! -w "$dir" ]; then echo "files: $dir is not writable by uid $(id -u)" >&2; exit 1; fi
done
STORE_LOCK=${FILES_ACCOUNTS:-/data/accounts}/users.lock
store_clear_stale_lock
echo "files: listening on port 8080" >&2
exec httpd -f -p 8080 -h /www
