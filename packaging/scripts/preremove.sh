#!/bin/sh
# Removal (not upgrade): stop and disable every unit.
set -e
case "$1" in
	remove|0) ;;
	*) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
	for u in postern-milter postern-policyd postern-tcptable postern-lmtp-shadow; do
		systemctl disable --now "$u.socket" "$u.service" >/dev/null 2>&1 || true
	done
	systemctl disable --now postern-welcome.timer >/dev/null 2>&1 || true
fi
exit 0
