# Sourced by build-apps.sh: the staging of git.pic.ngo/roof/pic-mail, the example catalog's email
# service (examples/store/services/email), from Debian's packages:
#
#   postfix          SMTP on 25 (mail for the domain) and submission on 587 (STARTTLS, then
#                    SASL through Dovecot); delivery into the mailboxes over LMTP; outbound mail
#                    straight to the recipient's MX or through a smarthost; libsasl2-modules for
#                    the smarthost's AUTH PLAIN/LOGIN
#   dovecot-core, dovecot-imapd, dovecot-lmtpd
#                    IMAPS on 993, the LMTP delivery agent, the SASL service Postfix asks, and
#                    doveadm (password hashes, kicking a removed account's sessions)
#   openssl          the start script's stand-in certificate until the cell's one is in place
#
# with busybox-static for the shell and examples/images/mail/rootfs (the configuration, the start
# script, `mail-account`, which email_manager runs, and the image's users, with fixed UIDs so that
# the mail volume's owners survive an upgrade). One layer, fixed owners, modes and times
# (debian-image.sh). The image runs as root: Postfix's master and Dovecot's drop to their users.

# shellcheck shell=bash

stage_mail() {
  local stage=$1 file
  need /usr/lib/postfix/sbin/master postfix
  need /usr/sbin/dovecot dovecot-core
  need /usr/lib/dovecot/imap dovecot-imapd
  need /usr/lib/dovecot/lmtp dovecot-lmtpd
  need /usr/bin/openssl openssl
  need /usr/lib/x86_64-linux-gnu/sasl2/libplain.so libsasl2-modules

  # Postfix: the daemons master starts, the commands the scripts use, its shared libraries.
  for file in /usr/lib/postfix/sbin/{master,smtpd,smtp,qmgr,pickup,cleanup,trivial-rewrite,bounce,error,discard,lmtp,anvil,scache,showq,flush,proxymap,verify,tlsmgr,postlogd} \
    /usr/sbin/{postconf,postmap,postqueue,postdrop,sendmail,postsuper,postlog}; do
    put_with_libraries "$stage" "$file"
  done
  install -D -m 0644 /etc/postfix/dynamicmaps.cf "$stage/etc/postfix/dynamicmaps.cf"
  mkdir -p "$stage/etc/postfix/dynamicmaps.cf.d" "$stage/etc/postfix/postfix-files.d"
  # Cyrus SASL loads the plugins of this folder by their .so names.
  put_with_libraries "$stage" /usr/lib/x86_64-linux-gnu/sasl2/libplain.so
  put_with_libraries "$stage" /usr/lib/x86_64-linux-gnu/sasl2/liblogin.so

  # Dovecot: every program under /usr/lib/dovecot of the three packages (master starts them by
  # path), the SSL module it loads at run time, doveadm and doveconf.
  while IFS= read -r file; do
    [[ -f $file && -x $file && ! -L $file && $file != *.sh && $file != *.so* ]] && put_with_libraries "$stage" "$file"
  done < <(dpkg -L dovecot-core dovecot-imapd dovecot-lmtpd | grep -E '^/usr/lib/dovecot/[^/]+$' | sort)
  put_with_libraries "$stage" /usr/sbin/dovecot
  put_with_libraries "$stage" /usr/lib/dovecot/modules/libssl_iostream_openssl.so
  put_with_libraries "$stage" /usr/bin/doveadm
  put_with_libraries "$stage" /usr/bin/doveconf

  put_with_libraries "$stage" /usr/bin/openssl
  install -D -m 0644 /usr/lib/ssl/openssl.cnf "$stage/usr/lib/ssl/openssl.cnf"
  # Smarthosts with a public certificate (smtp_tls_security_level = secure needs these).
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$stage/etc/ssl/certs/ca-certificates.crt"
  install -m 0644 /etc/services "$stage/etc/services"

  mkdir -p "$stage/var/spool/postfix" "$stage/var/lib/postfix" "$stage/var/lib/dovecot" "$stage/data/mail"

  IMG_CMD=(/usr/local/bin/pic-init /app/start.sh)
  IMG_ENV=(MAIL_DATA=/data/mail)
  IMG_PACKAGES+=" postfix=$(package_version postfix) dovecot-core=$(package_version dovecot-core) dovecot-imapd=$(package_version dovecot-imapd)"
  IMG_PACKAGES+=" dovecot-lmtpd=$(package_version dovecot-lmtpd) libsasl2-modules=$(package_version libsasl2-modules) openssl=$(package_version openssl)"
}
