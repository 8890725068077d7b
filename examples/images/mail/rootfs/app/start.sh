#!/bin/sh
# Runs the stand-in mail server: an SMTP greeter on ports 25 and 587, and on 8080 a status page
# plus /mail/config-v1.1.xml, the settings file mail clients fetch from autoconfig.<domain>.
# It stores mailbox accounts (see mail-account) but neither accepts nor delivers mail.
. /usr/local/lib/pic/account-store.sh

data=${MAIL_DATA:-/data/mail}
domain=${MAIL_DOMAIN:-}
if [ -z "$domain" ]; then echo "mail: MAIL_DOMAIN is not set (the service's domain setting)" >&2; exit 2; fi
if [ ! -w "$data" ]; then echo "mail: $data is not writable by uid $(id -u)" >&2; exit 1; fi
STORE_LOCK=$data/accounts.lock
store_clear_stale_lock

host=$(printf '%s' "${MAIL_HOSTNAME:-mail.$domain}" | sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g')
mail_domain=$(printf '%s' "$domain" | sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g')
mkdir -p /tmp/www/mail
cat >/tmp/www/index.html <<PAGE
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mail for $mail_domain</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto">
<h1>Mail for $mail_domain</h1>
<p>Server name <code>$host</code>, SMTP submission on port 587. Mail clients read these
settings from <a href="/mail/config-v1.1.xml">/mail/config-v1.1.xml</a>.</p>
<p>This example server keeps mailbox accounts but does not accept or deliver mail.</p>
</body></html>
PAGE
cat >/tmp/www/mail/config-v1.1.xml <<XML
<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="$mail_domain">
    <domain>$mail_domain</domain>
    <displayName>Mail for $mail_domain</displayName>
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

pids=''
httpd -f -p 8080 -h /tmp/www & pids="$pids $!"
nc -ll -p 25 -e /app/smtp.sh & pids="$pids $!"
nc -ll -p 587 -e /app/smtp.sh & pids="$pids $!"
trap 'kill $pids 2>/dev/null; exit 0' TERM INT
echo "mail: $domain; SMTP greeter on 25 and 587, status page on 8080" >&2

# Exit (and let the restart policy act) as soon as one of the servers is gone.
while :; do
	for pid in $pids; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "mail: server process $pid exited; stopping" >&2
			kill $pids 2>/dev/null
			exit 1
		fi
	done
	sleep 5 &
	wait $!
done
