#!/bin/sh
# Installs the Debian 12 packages the test bench needs: the real servers postern is tested
# against (Samba AD, Postfix, Cyrus IMAP, Redis) and the peers it is measured beside.
# sasl2-bin (saslpasswd2) and libsasl2-modules (PLAIN, LOGIN) with libsasl2-modules-db
# (sasldb) give the bench Postfix's submission service its SASL AUTH.
# Idempotent: does nothing when everything is present. Needs root.
set -eu

pkgs="samba samba-ad-provision samba-dsdb-modules samba-vfs-modules ldap-utils postfix postfix-ldap cyrus-imapd cyrus-clients cyrus-admin sasl2-bin libsasl2-modules libsasl2-modules-db dovecot-core dovecot-lmtpd
redis-server swaks postfwd altermime opendkim opendkim-tools iproute2 ca-certificates
lintian rpm rpmlint prometheus"

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing; run as root (or install them yourself)" >&2
	exit 1
fi

# Never let the packages start system-wide instances: the tests start private ones.
if [ ! -x /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
fi
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q $missing
