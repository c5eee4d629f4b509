#!/bin/sh
# bench-vs-sisimai.sh -- messages per second of bouncepipe.Parse and of
# Sisimai (Debian libsisimai-perl) over the same corpus files in the same
# run, and their ratio (goal: bouncepipe >= 50x). Installs libsisimai-perl
# when it is missing (needs root). Run from the repository root:
#
#	sh bouncepipe/testdata/bench-vs-sisimai.sh
#
# SENDERKIT_CORPUS names the corpus when it is not ../shared/corpus.
set -eu
if ! perl -MSisimai -e 1 2>/dev/null; then
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y libsisimai-perl
fi
SENDERKIT_BENCH=1 exec go test -count=1 -run '^TestBenchVsSisimai$' -v ./bouncepipe/
