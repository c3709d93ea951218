#!/bin/sh
# Create the _postern user before the files that belong to it are unpacked.
set -e
if ! getent passwd _postern >/dev/null; then
	if command -v systemd-sysusers >/dev/null 2>&1; then
		echo 'u _postern - "postern mail daemons" /var/lib/postern /usr/sbin/nologin' | systemd-sysusers - >/dev/null
	else
		groupadd -r _postern 2>/dev/null || true
		useradd -r -g _postern -d /var/lib/postern -M -s /sbin/nologin -c "postern mail daemons" _postern
	fi
fi
exit 0
