#!/bin/sh
# Answers one HTTP request on stdin/stdout, then closes the connection.
#
#   GET    /                                 the notes page
#   GET    /account                          the signed-in page: HTTP Basic, checked against the
#                                            account store; 401 without or with wrong credentials
#   GET    /service-api/accounts             200 {"accounts":["alice",...]}
#   POST   /service-api/accounts             {"username","password"}: 200 {"ok":true},
#                                            400 invalid input, 409 the account exists
#   DELETE /service-api/accounts/<username>  200 {"ok":true}, 404 when there is no such account
#   POST   /register                         sign-up form, only when NOTES_REGISTRATION=true
#
# The account API has no authentication: only containers on cell-network can reach it. Sign-in
# (/account) checks a peer's password against the same store the account API writes, so the
# account the operator provisions is the one a person signs in with.
. /usr/local/lib/pic/account-store.sh

DATA=${NOTES_DATA:-/data/notes}
STORE_FILE=$DATA/accounts
STORE_LOCK=$DATA/accounts.lock
MAX_BODY=65536
CR=$(printf '\r')
METHOD=- REQ_PATH=-

log() {
	echo "notes: $METHOD $REQ_PATH $1" >&2
}

# send STATUS CONTENT-TYPE BODY, then exit.
send() {
	length=$(printf '%s' "$3" | wc -c)
	printf 'HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %s\r\nCache-Control: no-store\r\nConnection: close\r\n' "$1" "$2" "$length"
	if [ -n "$EXTRA_HEADER" ]; then printf '%s\r\n' "$EXTRA_HEADER"; fi
	printf '\r\n'
	if [ "$METHOD" != HEAD ]; then printf '%s' "$3"; fi
	log "${1%% *}"
	exit 0
}

send_json() {
	send "$1" application/json "$2"
}

# Error texts are fixed strings of ours, so they need no JSON escaping.
send_error() {
	send_json "$1" "{\"ok\":false,\"error\":\"$2\"}"
}

html_escape() {
	printf '%s' "$1" | sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g; s/"/\&quot;/g'
}

send_page() {
	status=$1 heading=$2 content=$3
	title=$(html_escape "${NOTES_TITLE:-Notes}")
	send "$status" 'text/html; charset=utf-8' "<!doctype html>
<html lang=\"${NOTES_LANGUAGE:-en}\">
<head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">
<title>$title</title>
<style>body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; padding: 0 1rem; line-height: 1.5 }</style></head>
<body>
<h1>$heading</h1>
$content
</body>
</html>
"
}

read_request_head() {
	IFS=' ' read -t 10 -r METHOD TARGET PROTO EXTRA || exit 0
	PROTO=${PROTO%"$CR"}
	case $PROTO in HTTP/1.[01]) ;; *) METHOD=- && send_error '400 Bad Request' 'malformed request line' ;; esac
	[ -z "$EXTRA" ] || send_error '400 Bad Request' 'malformed request line'
	case $TARGET in /*) ;; *) send_error '400 Bad Request' 'malformed request target' ;; esac
	REQ_PATH=${TARGET%%\?*}

	# Headers are collected and read by one awk call: three values matter here.
	headers='' count=0
	while :; do
		# A client that stops sending (or closes) mid-head gets no answer.
		IFS= read -t 10 -r line || exit 0
		line=${line%"$CR"}
		[ -z "$line" ] && break
		count=$((count + 1))
		[ "$count" -le 100 ] || send_error '431 Request Header Fields Too Large' 'too many header fields'
		headers="$headers$line
"
	done
	eval "$(printf '%s' "$headers" | awk -F: '
		{ name = tolower($1); value = substr($0, length($1) + 2); gsub(/^[ \t]+|[ \t]+$/, "", value) }
		name == "content-length" && value ~ /^[0-9]+$/ { length_value = value }
		name == "content-length" && value !~ /^[0-9]+$/ { length_value = "bad" }
		name == "transfer-encoding" { chunked = 1 }
		name == "expect" && tolower(value) == "100-continue" { expect = 1 }
		# Only the base64 token of a Basic credential is passed on ("-" for anything else), so
		# the eval below sees nothing but base64 characters.
		name == "authorization" && value ~ /^[Bb][Aa][Ss][Ii][Cc] +[A-Za-z0-9+\/]+=*$/ && length(value) <= 2048 { sub(/^[^ ]+ +/, "", value); basic = value; next }
		name == "authorization" { basic = "-" }
		END { printf "CONTENT_LENGTH=%s CHUNKED=%d EXPECT_CONTINUE=%d AUTH_BASIC=%s\n", length_value, chunked, expect, basic }')"
}

read_body() {
	[ "$CHUNKED" = 1 ] && send_error '411 Length Required' 'send the body with a Content-Length'
	case $CONTENT_LENGTH in
		'') send_error '411 Length Required' 'send the body with a Content-Length' ;;
		bad) send_error '400 Bad Request' 'malformed Content-Length' ;;
	esac
	if [ "${#CONTENT_LENGTH}" -gt 6 ] || [ "$CONTENT_LENGTH" -gt "$MAX_BODY" ]; then
		send_error '413 Payload Too Large' 'the body is larger than 64 KiB'
	fi
	if [ "$EXPECT_CONTINUE" = 1 ]; then printf 'HTTP/1.1 100 Continue\r\n\r\n'; fi
	# The trailing x keeps command substitution from eating final newlines.
	BODY=$(timeout 10 head -c "$CONTENT_LENGTH"; echo x)
	BODY=${BODY%x}
	received=$(printf '%s' "$BODY" | wc -c)
	[ "$received" -eq "$CONTENT_LENGTH" ] || send_error '400 Bad Request' 'the body is shorter than its Content-Length'
}

url_decode() {
	printf '%s\n' "$1" | awk -v form="${2:-0}" -f /app/url-decode.awk
}

# create_account NAME PASSWORD: sets CREATE_STATUS to 0, 3 (exists) or 1.
create_account() {
	hash=$(store_hash "$2") && [ -n "$hash" ] || { CREATE_STATUS=1 && return; }
	store_lock || { CREATE_STATUS=1 && return; }
	store_add "$1" "$hash"
	CREATE_STATUS=$?
	store_unlock
}

# password_matches NAME PASSWORD: whether the store holds NAME with that password. The stored
# crypt(3) string names its own salt; the password is hashed again with it and compared.
password_matches() {
	[ -f "$STORE_FILE" ] || return 1
	stored=$(awk -F: -v name="$1" '$1 == name { print substr($0, length($1) + 2); exit }' "$STORE_FILE")
	case $stored in '$6$'*'$'?*) ;; *) return 1 ;; esac
	salt=${stored#'$6$'}
	salt=${salt%%'$'*}
	computed=$(printf '%s\n' "$2" | mkpasswd -m sha512 -S "$salt" -P 0) || return 1
	[ -n "$computed" ] && [ "$computed" = "$stored" ]
}

# Sets SIGNED_IN to the user name of a valid Basic credential, or answers 401.
require_sign_in() {
	SIGNED_IN=''
	if [ -n "$AUTH_BASIC" ] && [ "$AUTH_BASIC" != - ]; then
		# The trailing x keeps command substitution from eating final newlines.
		pair=$(printf '%s' "$AUTH_BASIC" | base64 -d 2>/dev/null; echo x)
		pair=${pair%x}
		name=${pair%%:*}
		password=${pair#*:}
		if [ "$name" != "$pair" ] && store_valid_name "$name" && store_valid_password "$password" && password_matches "$name" "$password"; then
			SIGNED_IN=$name
			return 0
		fi
	fi
	EXTRA_HEADER='WWW-Authenticate: Basic realm="Notes", charset="UTF-8"'
	send_page '401 Unauthorized' 'Sign in' '<p>Sign in with the username and password the cell admin gave you (pic credentials).</p>'
}

account_page() {
	require_sign_in
	send_page '200 OK' 'Your notes' "<p>Signed in as $(html_escape "$SIGNED_IN").</p>"
}

list_accounts() {
	names=$(store_names | awk 'NR > 1 { printf "," } { printf "\"%s\"", $0 }')
	send_json '200 OK' "{\"accounts\":[$names]}"
}

api_create() {
	read_body
	parsed=$(printf '%s' "$BODY" | awk -f /app/json-credentials.awk)
	{
		IFS= read -r verdict
		IFS= read -r username
		IFS= read -r password
	} <<EOF
$parsed
EOF
	[ "$verdict" = ok ] || send_error '400 Bad Request' "invalid JSON body (${verdict#error: })"
	store_valid_name "$username" || send_error '400 Bad Request' 'username must be 1-64 characters of A-Z a-z 0-9 . _ @ -'
	store_valid_password "$password" || send_error '400 Bad Request' 'password must be 1-1024 characters without control characters'
	create_account "$username" "$password"
	case $CREATE_STATUS in
		0) send_json '200 OK' '{"ok":true}' ;;
		3) send_error '409 Conflict' 'account already exists' ;;
		*) send_error '500 Internal Server Error' 'could not write the account store' ;;
	esac
}

api_delete() {
	username=$(url_decode "${REQ_PATH#/service-api/accounts/}") || send_error '400 Bad Request' 'malformed percent-encoding'
	store_valid_name "$username" || send_error '400 Bad Request' 'username must be 1-64 characters of A-Z a-z 0-9 . _ @ -'
	store_lock || send_error '500 Internal Server Error' 'account store busy'
	store_remove "$username"
	status=$?
	store_unlock
	case $status in
		0) send_json '200 OK' '{"ok":true}' ;;
		4) send_error '404 Not Found' 'not found' ;;
		*) send_error '500 Internal Server Error' 'could not write the account store' ;;
	esac
}

home_page() {
	count=$(store_names | wc -l)
	domain=$(html_escape "${NOTES_DOMAIN:-this cell}")
	if [ "${NOTES_REGISTRATION:-false}" = true ]; then
		signup='<h2>Sign up</h2>
<form method="post" action="/register">
<p><label>Username <input name="username" required maxlength="64" pattern="[A-Za-z0-9._@-]+"></label></p>
<p><label>Password <input name="password" type="password" required></label></p>
<p><button>Create account</button></p>
</form>'
	else
		signup='<p>Accounts are provided by the cell admin.</p>'
	fi
	signup="<p><a href=\"/account\">Sign in</a></p>
$signup"
	send_page '200 OK' "$(html_escape "${NOTES_TITLE:-Notes}")" "<p>Notes on $domain: $count account(s).</p>
$signup"
}

register() {
	[ "${NOTES_REGISTRATION:-false}" = true ] || send_page '403 Forbidden' 'Sign-up is closed' '<p>Ask the cell admin for an account.</p>'
	read_body
	username='' password=''
	old_ifs=$IFS
	IFS='&'
	for pair in $BODY; do
		IFS=$old_ifs
		key=${pair%%=*}
		case $key in
			username) username=$(url_decode "${pair#*=}" 1) || username=' ' ;;
			password) password=$(url_decode "${pair#*=}" 1) || password='' ;;
		esac
	done
	IFS=$old_ifs
	store_valid_name "$username" || send_page '400 Bad Request' 'Not created' '<p>A username is 1-64 characters of A-Z a-z 0-9 . _ @ -</p>'
	store_valid_password "$password" || send_page '400 Bad Request' 'Not created' '<p>The password may not be empty.</p>'
	create_account "$username" "$password"
	case $CREATE_STATUS in
		0) send_page '200 OK' 'Account created' "<p>Welcome, $username.</p>" ;;
		3) send_page '409 Conflict' 'Not created' '<p>That username is taken.</p>' ;;
		*) send_page '500 Internal Server Error' 'Not created' '<p>The account store could not be written.</p>' ;;
	esac
}

read_request_head
case "$METHOD $REQ_PATH" in
	'GET /' | 'HEAD /') home_page ;;
	'GET /account' | 'HEAD /account') account_page ;;
	'GET /service-api/accounts' | 'GET /service-api/accounts/') list_accounts ;;
	'POST /service-api/accounts' | 'POST /service-api/accounts/') api_create ;;
	'DELETE /service-api/accounts/'?*) api_delete ;;
	'POST /register') register ;;
	*' /service-api/accounts' | *' /service-api/accounts/'*)
		EXTRA_HEADER='Allow: GET, POST, DELETE'
		send_error '405 Method Not Allowed' 'method not allowed'
		;;
	*' /service-api/'*) send_error '404 Not Found' 'no such endpoint' ;;
	*) send_page '404 Not Found' 'Not found' '<p>There is nothing here.</p>' ;;
esac
