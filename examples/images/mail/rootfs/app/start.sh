#!/bin/sh
# Starts the mail server of the pic email service: Dovecot (IMAPS 993, LMTP, SASL for Postfix),
# Postfix (SMTP 25 for the domain's mail, submission 587 with STARTTLS and SASL) and, on 8080,
# the autoconfig file mail clients read from autoconfig.<domain>. Runs them as children and stops
# (for the restart policy to act) when one of them exits.
#
# Environment (from the service's config, see examples/store/services/email):
#   MAIL_DOMAIN            the part of each address after the @ (required)
#   MAIL_HOSTNAME          the server's name, in greetings and the autoconfig file (mail.<domain>)
#   RELAY_HOST, RELAY_PORT a smarthost for outbound mail; none: straight to the recipients' MX
#   RELAY_CREDENTIALS_FILE a file in /etc/pic/smarthost holding "username:password" for AUTH at
#                          the smarthost (then STARTTLS to it is required)
#   MAIL_TLS_DIR           cert.pem (the chain) and key.pem of MAIL_HOSTNAME: pic places the
#                          certificate the cell's CA issued there (/etc/pic/tls/mail) and replaces
#                          it when Caddy renews it; until then, a self-signed one is made there
# Data: /data/mail (accounts in passwd, mailboxes/); Postfix's queue on /var/spool/postfix.
set -eu
umask 022

log() { echo "mail: $*" >&2; }
fail() { log "$*"; exit 2; }

# A lowercase DNS name with at least two labels.
valid_name() {
	case $1 in *[!a-z0-9.-]* | .* | *. | *..* | -* | *-.* | *.-* | *-) return 1 ;; esac
	case $1 in *.*) ;; *) return 1 ;; esac
	[ "${#1}" -le 253 ]
}

data=${MAIL_DATA:-/data/mail}
domain=${MAIL_DOMAIN:-}
host=${MAIL_HOSTNAME:-mail.$domain}
relay_host=${RELAY_HOST:-}
relay_port=${RELAY_PORT:-587}
relay_credentials=${RELAY_CREDENTIALS_FILE:-}
tls=${MAIL_TLS_DIR:-/etc/pic/tls/mail}
valid_name "$domain" || fail "MAIL_DOMAIN '$domain' is not a lowercase DNS name such as example.org (the service's domain setting)"
valid_name "$host" || fail "MAIL_HOSTNAME '$host' is not a lowercase DNS name"
[ -z "$relay_host" ] || valid_name "$relay_host" || case $relay_host in *[!0-9.]*) fail "RELAY_HOST '$relay_host' is neither a DNS name nor an IPv4 address (the service's relay_host setting)" ;; esac
case $relay_port in '' | *[!0-9]*) fail "RELAY_PORT '$relay_port' is not a port number (the service's relay_port setting)" ;; esac
[ "$relay_port" -ge 1 ] && [ "$relay_port" -le 65535 ] || fail "RELAY_PORT $relay_port is not within 1-65535"
[ -w "$data" ] || fail "$data is not writable (is the mail-data volume mounted?)"

# --- the data volume ---------------------------------------------------------------------------
mkdir -p "$data/mailboxes" "$tls"
chown vmail:vmail "$data/mailboxes"
chmod 0700 "$data/mailboxes" "$tls"
rmdir "$data/accounts.lock" 2>/dev/null || true
[ -f "$data/passwd" ] || : >"$data/passwd"
chown root:dovecot "$data/passwd"
chmod 0640 "$data/passwd"
/usr/local/bin/mail-account sync-postfix

# Until pic places the cell's certificate in $tls (cert.pem: the chain, key.pem), one of our own.
if [ ! -s "$tls/cert.pem" ] || [ ! -s "$tls/key.pem" ]; then
	log "no certificate in $tls yet: a self-signed one for $host until the cell's arrives"
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$host" -addext "subjectAltName=DNS:$host" \
		-keyout "$tls/key.pem.new" -out "$tls/cert.pem.new" 2>/dev/null
	chmod 0600 "$tls/key.pem.new"
	mv -f "$tls/key.pem.new" "$tls/key.pem"
	mv -f "$tls/cert.pem.new" "$tls/cert.pem"
fi
printf 'ssl_cert = <%s/cert.pem\nssl_key = <%s/key.pem\n' "$tls" "$tls" >/run/dovecot-tls.conf

# --- Postfix -----------------------------------------------------------------------------------
spool=/var/spool/postfix
mkdir -p "$spool/pid" /var/lib/postfix
for d in active bounce corrupt defer deferred flush hold incoming private saved trace; do
	mkdir -p "$spool/$d"
	chown postfix:root "$spool/$d"
	chmod 0700 "$spool/$d"
done
mkdir -p "$spool/maildrop" "$spool/public"
chown postfix:postdrop "$spool/maildrop" "$spool/public"
chmod 1730 "$spool/maildrop"
chmod 2710 "$spool/public"
chown root:root "$spool" "$spool/pid"
chown postfix:postfix /var/lib/postfix
chmod 0700 /var/lib/postfix
rm -f "$spool/pid/master.pid"

relayhost=''
sasl='smtp_sasl_auth_enable = no'
client_tls=may
if [ -n "$relay_host" ]; then
	relayhost="[$relay_host]:$relay_port"
	if [ -n "$relay_credentials" ]; then
		file=/etc/pic/smarthost/$relay_credentials
		case $relay_credentials in */* | .*) fail "RELAY_CREDENTIALS_FILE '$relay_credentials' must be a file name in the service's smarthost folder" ;; esac
		[ -r "$file" ] || fail "the smarthost credentials file $file is missing (put \"username:password\" in <data dir>/email/smarthost/$relay_credentials)"
		IFS= read -r line <"$file" || [ -n "$line" ] || fail "$file is empty: it holds one line, username:password"
		case $line in *:*) ;; *) fail "$file does not hold username:password" ;; esac
		(umask 077 && printf '%s %s\n' "$relayhost" "$line" >/etc/postfix/relay-credentials)
		sasl="smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = texthash:/etc/postfix/relay-credentials
smtp_sasl_security_options = noanonymous
smtp_sasl_tls_security_options = noanonymous"
		# A password never crosses the network in the clear.
		client_tls=encrypt
	fi
fi

cat >/etc/postfix/main.cf <<CONF
# Written by /app/start.sh from the service's settings at each start.
compatibility_level = 3.6
myhostname = $host
mydomain = $domain
myorigin = \$mydomain
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = all
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = /dev/stdout
smtpd_banner = \$myhostname ESMTP
biff = no
append_dot_mydomain = no
disable_vrfy_command = yes
smtpd_helo_required = yes
smtpd_peername_lookup = no

virtual_mailbox_domains = $domain
virtual_mailbox_maps = texthash:$data/addresses
virtual_transport = lmtp:unix:private/dovecot-lmtp

smtpd_tls_cert_file = $tls/cert.pem
smtpd_tls_key_file = $tls/key.pem
smtpd_tls_security_level = may
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_protocols = >=TLSv1.2
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = reject_unlisted_recipient

relayhost = $relayhost
smtp_tls_security_level = $client_tls
smtp_tls_CAfile = /etc/ssl/certs/ca-certificates.crt
$sasl
CONF

# --- autoconfig (Thunderbird's config-v1.1.xml) and a status page --------------------------------
mkdir -p /tmp/www/mail /tmp/www/.well-known/autoconfig/mail
cat >/tmp/www/mail/config-v1.1.xml <<XML
<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="$domain">
    <domain>$domain</domain>
    <displayName>Mail for $domain</displayName>
    <displayShortName>$domain</displayShortName>
    <incomingServer type="imap">
      <hostname>$host</hostname>
      <port>993</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>$host</hostname>
      <port>587</port>
      <socketType>STARTTLS</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </outgoingServer>
  </emailProvider>
</clientConfig>
XML
cp /tmp/www/mail/config-v1.1.xml /tmp/www/.well-known/autoconfig/mail/config-v1.1.xml
cat >/tmp/www/index.html <<PAGE
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mail for $domain</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto">
<h1>Mail for $domain</h1>
<p>IMAP over TLS: <code>$host</code> port 993. Sending (submission, STARTTLS): <code>$host</code> port 587.
Your user name is your address. Mail clients read these settings from
<a href="/mail/config-v1.1.xml">/mail/config-v1.1.xml</a>.</p>
</body></html>
PAGE

# --- run ---------------------------------------------------------------------------------------
pids=''
stop() {
	# shellcheck disable=SC2086
	kill $pids 2>/dev/null || true
}
trap 'stop; exit 0' TERM INT

dovecot -F -c /etc/dovecot/dovecot.conf & pids="$pids $!"
# Postfix's LMTP and SASL sockets are Dovecot's: wait for them before mail arrives.
tries=0
while [ ! -S "$spool/private/auth" ] || [ ! -S "$spool/private/dovecot-lmtp" ]; do
	tries=$((tries + 1))
	[ "$tries" -lt 100 ] || { stop; fail "Dovecot did not open its sockets in 10 s"; }
	sleep 0.1
done
/usr/lib/postfix/sbin/master -d & pids="$pids $!"
httpd -f -p 8080 -h /tmp/www & pids="$pids $!"
log "$domain on $host: IMAPS 993, SMTP 25, submission 587, autoconfig on 8080${relayhost:+; outbound through $relayhost}"

# A new certificate in $tls (pic places the cell's, and its renewals) is taken up without a restart.
fingerprint() { cat "$tls/cert.pem" "$tls/key.pem" 2>/dev/null | md5sum; }
known=$(fingerprint)
while :; do
	for pid in $pids; do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "server process $pid exited; stopping"
			stop
			exit 1
		fi
	done
	now=$(fingerprint)
	if [ "$now" != "$known" ]; then
		known=$now
		log "the certificate in $tls changed: reloading Dovecot and Postfix"
		doveadm reload || true
		# master.pid holds the number padded with spaces.
		kill -HUP "$(tr -d ' ' <"$spool/pid/master.pid")" 2>/dev/null || true
	fi
	sleep 5 &
	wait $! || true
done
