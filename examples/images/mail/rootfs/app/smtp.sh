#!/bin/sh
# A placeholder SMTP session on stdin/stdout: it greets, answers HELO, EHLO, NOOP, RSET and QUIT,
# and refuses everything else, so port checks and firewall rules have something real to reach.
CR=$(printf '\r')
host=${MAIL_HOSTNAME:-mail.${MAIL_DOMAIN:-localhost}}

reply() {
	printf '%s\r\n' "$1"
}

reply "220 $host ESMTP pic example server, accepts no mail"
while IFS= read -t 60 -r line; do
	line=${line%"$CR"}
	case ${line%% *} in
		[Hh][Ee][Ll][Oo] | [Ee][Hh][Ll][Oo]) reply "250 $host" ;;
		[Nn][Oo][Oo][Pp] | [Rr][Ss][Ee][Tt]) reply '250 2.0.0 OK' ;;
		[Qq][Uu][Ii][Tt])
			reply '221 2.0.0 Bye'
			exit 0
			;;
		*) reply '502 5.5.1 This example server does not accept mail' ;;
	esac
done
