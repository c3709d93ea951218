#!/bin/sh
# Prints the package version from git, in a form that dpkg and rpm both accept and order
# as the history goes (packaging/version_test.go checks the order with both):
#   tag v1.2.3                           1.2.3
#   4 commits after v1.2.3               1.2.3+4.gabc1234   ('+' sorts above 1.2.3, below 1.2.4)
#   tag v1.3.0-rc1 (a pre-release)       1.3.0~rc1          ('~' sorts below 1.3.0)
#   2 commits after v1.3.0-rc1           1.3.0~rc1+2.gdef5678
#   before the first tag                 0.0.0~git20261204.153012.abc1234
# Before the first tag the commit's committer time in UTC comes before the hash, so two
# builds of one day sort by time, not by hash. ('~' keeps them below any release.)
set -eu
if v=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
	echo "$v" | sed -e 's/^v//' -e 's/-\([0-9][0-9]*\)-g\([0-9a-f][0-9a-f]*\)$/+\1.g\2/' -e 's/-/~/g'
else
	TZ=UTC0 git log -1 --format='0.0.0~git%cd.%h' --date=format-local:%Y%m%d.%H%M%S
fi
