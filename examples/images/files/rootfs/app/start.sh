#!/bin/sh
# Apache httpd on port 8080, in the foreground: `start.sh web` is cell-files (the read-only web
# view), `start.sh webdav` is cell-webdav (WebDAV). Both use $FILES_DATA (a folder per person)
# and $FILES_ACCOUNTS/users (htpasswd lines "NAME:BCRYPT", kept by files-account).
. /usr/local/lib/pic/account-store.sh

mode=${1:-web}
case $mode in web | webdav) ;; *) echo "usage: start.sh web|webdav" >&2; exit 2 ;; esac
export FILES_DATA="${FILES_DATA:-/data/files}" FILES_ACCOUNTS="${FILES_ACCOUNTS:-/data/accounts}"
for dir in "$FILES_DATA" "$FILES_ACCOUNTS"; do
	if [ ! -w "$dir" ]; then echo "files: $dir is not writable by uid $(id -u)" >&2; exit 1; fi
done
if [ "$mode" = web ]; then
	STORE_LOCK=$FILES_ACCOUNTS/users.lock
	store_clear_stale_lock
fi
if [ ! -e "$FILES_ACCOUNTS/users" ]; then (umask 077 && : >"$FILES_ACCOUNTS/users") || exit 1; fi
mkdir -p /tmp/dav || exit 1
echo "files: Apache httpd ($mode) on port 8080" >&2
exec apache2 -f "/etc/apache2/$mode.conf" -DFOREGROUND
