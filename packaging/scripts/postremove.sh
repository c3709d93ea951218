#!/bin/sh
# After removal: reload systemd. Purge removes the configuration but keeps the state
# (journal, ledgers) and the _postern user: archived mail stays readable.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = purge ]; then
	rm -rf /etc/postern
fi
exit 0
