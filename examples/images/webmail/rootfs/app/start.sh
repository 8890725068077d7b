#!/bin/sh
# Serves the stand-in webmail on port 8080. /admin/ is protected by Basic auth for the user
# "admin" with WEBMAIL_ADMIN_PASSWORD (a secret the operator generates for the service).
. /usr/local/lib/pic/account-store.sh

escape() { printf '%s' "$1" | sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g'; }
domain=$(escape "${MAIL_DOMAIN:-this cell}")
mail_host=$(escape "${MAIL_HOST:-cell-mail}")

mkdir -p /tmp/www/admin
cat >/tmp/www/index.html <<PAGE
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Webmail</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto">
<h1>Webmail for $domain</h1>
<p>A real webmail would sign you in here and talk to <code>$mail_host</code> over IMAP and SMTP.
This example only shows that the route, the container and its dependency are in place.</p>
</body></html>
PAGE
cat >/tmp/www/admin/index.html <<PAGE
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Webmail admin</title></head>
<body><h1>Webmail admin for $domain</h1><p>Signed in as admin.</p></body></html>
PAGE

if [ -n "${WEBMAIL_ADMIN_PASSWORD:-}" ]; then
	printf '/admin:admin:%s\n' "$(store_hash "$WEBMAIL_ADMIN_PASSWORD")" >/tmp/httpd.conf
else
	echo "webmail: WEBMAIL_ADMIN_PASSWORD is not set; /admin/ is closed" >&2
	printf '/admin:-:$6$nologin$\n' >/tmp/httpd.conf
fi
chmod 0600 /tmp/httpd.conf
echo "webmail: listening on port 8080" >&2
exec httpd -f -p 8080 -h /tmp/www -c /tmp/httpd.conf -r Webmail
