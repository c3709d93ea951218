#!/bin/sh
# Fresh install: reload systemd only; nothing is enabled or started, because postern
# needs the directory settings first. Upgrade: restart the units that run.
set -e
units="postern-milter postern-policyd postern-tcptable postern-lmtp-shadow"
upgrade=false
case "$1" in
	configure) [ -n "$2" ] && upgrade=true ;;  # deb: configure OLD-VERSION
	[0-9]*) [ "$1" -gt 1 ] && upgrade=true ;;  # rpm: number of installed versions
esac
mkdir -p /var/lib/postern && chown _postern:_postern /var/lib/postern && chmod 0750 /var/lib/postern
# dpkg unpacks with numeric ids; the configuration (with secrets) is root:_postern.
chgrp _postern /etc/postern && chmod 0750 /etc/postern
[ -e /etc/postern/postern.yaml ] && chgrp _postern /etc/postern/postern.yaml
# /var/spool/postfix/postern now, not at the next boot (tmpfiles.d/postern.conf). It
# needs group postfix: without Postfix the line is skipped.
if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles --create /usr/lib/tmpfiles.d/postern.conf >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	if $upgrade; then
		for u in $units; do systemctl try-restart "$u.service" >/dev/null 2>&1 || true; done
	fi
fi
if ! $upgrade; then
	echo "postern: edit /etc/postern/postern.yaml, run 'postern check-config', then 'systemctl enable --now postern-<daemon>.socket' (and postern-welcome.timer); see man postern."
fi
exit 0
