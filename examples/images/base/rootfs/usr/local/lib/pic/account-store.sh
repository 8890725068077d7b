# Account store shared by the example services (sourced by busybox sh scripts).
#
# An account file holds one line per account, "NAME:HASH", where HASH is a salted SHA-512
# crypt(3) string: the htpasswd format, which busybox httpd also accepts for Basic auth. A change
# takes a lock directory (mkdir is atomic), writes a temporary file next to the store and renames
# it over the old one, so concurrent callers never lose an update and a crash never leaves a
# half-written file.
#
# Callers set STORE_FILE and STORE_LOCK. Functions return the account commands' exit codes:
# 0 ok, 1 error, 3 already exists, 4 not found.

# 1 to 64 characters from A-Z a-z 0-9 . _ @ -
store_valid_name() {
	case $1 in '' | *[!A-Za-z0-9._@-]*) return 1 ;; esac
	[ "${#1}" -le 64 ]
}

# A name that also becomes a directory or a URL path segment: no leading dot or dash either.
store_valid_path_name() {
	case $1 in .* | -*) return 1 ;; esac
	store_valid_name "$1"
}

# 1 to 1024 characters without control characters: a password travels as one line.
store_valid_password() {
	case $1 in '' | *[[:cntrl:]]*) return 1 ;; esac
	[ "${#1}" -le 1024 ]
}

# Prints the hash of a password. printf is a shell builtin, so the password reaches mkpasswd
# through a pipe and never shows up in a process's argument list.
store_hash() {
	salt=$(head -c 12 /dev/urandom | base64 | tr + .)
	printf '%s\n' "$1" | mkpasswd -m sha512 -S "$salt" -P 0
}

store_lock() {
	if [ ! -w "${STORE_LOCK%/*}" ]; then
		echo "cannot write to ${STORE_LOCK%/*} (is the data volume mounted?)" >&2
		return 1
	fi
	tries=0
	while ! mkdir "$STORE_LOCK" 2>/dev/null; do
		tries=$((tries + 1))
		if [ "$tries" -ge 100 ]; then
			echo "account store busy: $STORE_LOCK has been held for 10 s" >&2
			return 1
		fi
		sleep 0.1
	done
	trap 'store_unlock' EXIT
	trap 'exit 1' INT TERM HUP
}

store_unlock() {
	rmdir "$STORE_LOCK" 2>/dev/null
	trap - EXIT
}

# A lock left behind by a process that died with it held. Start scripts call this before they
# serve anything, when no account operation can be running in the container.
store_clear_stale_lock() {
	rmdir "$STORE_LOCK" 2>/dev/null || true
}

store_has() {
	[ -f "$STORE_FILE" ] && awk -F: -v name="$1" '$1 == name { found = 1 } END { exit !found }' "$STORE_FILE"
}

store_names() {
	if [ -f "$STORE_FILE" ]; then cut -d: -f1 "$STORE_FILE" | sort; fi
}

# The next two expect the caller to hold the lock.
store_add() {
	if store_has "$1"; then return 3; fi
	store_tmp=$STORE_FILE.tmp.$$
	(
		umask 077
		{
			if [ -f "$STORE_FILE" ]; then cat "$STORE_FILE"; fi
			printf '%s:%s\n' "$1" "$2"
		} >"$store_tmp"
	) && store_commit "$store_tmp"
}

store_remove() {
	if ! store_has "$1"; then return 4; fi
	store_tmp=$STORE_FILE.tmp.$$
	(umask 077 && awk -F: -v name="$1" '$1 != name' "$STORE_FILE" >"$store_tmp") && store_commit "$store_tmp"
}

store_commit() {
	sync "$1" 2>/dev/null
	if ! mv -f "$1" "$STORE_FILE"; then
		rm -f "$1"
		return 1
	fi
}

# Writes Basic-auth rules for busybox httpd: PREFIX/NAME is open to NAME with its password, and
# anything else under PREFIX (a removed account's folder, the listing of PREFIX itself) to nobody:
# httpd checks the longest matching prefix, and the fallback hash matches no password.
store_write_httpd_conf() {
	conf_tmp=$2.tmp.$$
	(
		umask 077
		{
			if [ -f "$STORE_FILE" ]; then
				awk -v prefix="$1" '{ i = index($0, ":"); name = substr($0, 1, i - 1)
					printf "%s/%s:%s:%s\n", prefix, name, name, substr($0, i + 1) }' "$STORE_FILE"
			fi
			printf '%s:-:$6$nologin$\n' "$1"
		} >"$conf_tmp"
	) && mv -f "$conf_tmp" "$2"
}
