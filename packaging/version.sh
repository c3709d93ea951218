#!/bin/sh
# Prints the package version from git: the tag (v1.2.3 -> 1.2.3, with commits since as
# ~N.gHASH), or 0.0.0~gitDATE.HASH before the first tag.
set -eu
if v=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
	echo "$v" | sed 's/^v//; s/-\([0-9]*\)-g/~\1.g/'
else
	git log -1 --format='0.0.0~git%cd.%h' --date=format:%Y%m%d
fi
