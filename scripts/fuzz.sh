#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (make fuzz).
#
# Go's fuzzing coordinator can fail a target with a bare "context deadline
# exceeded" as -fuzztime runs out while a worker is busy (golang/go#75804),
# having found nothing: no failing input written. Such a run is tried once
# more; a failure that wrote a failing input, panicked or failed otherwise
# fails at once, and so does a second bare deadline.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# bare_deadline: the run in $log failed only on the coordinator's deadline.
bare_deadline() {
	grep -q 'context deadline exceeded' "$log" &&
		! grep -q -e 'Failing input written' -e '^panic:' -e '_test.go:[0-9]' "$log"
}

for pkg in $($GO list ./...); do
	for f in $($GO test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz'); do
		for try in 1 2; do
			echo "== $pkg $f"
			if $GO test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tee "$log"; then
				break
			fi
			if [ "$try" = 1 ] && bare_deadline; then
				echo "fuzz: $f stopped on the fuzzing engine's own deadline with nothing found (golang/go#75804); once more"
				continue
			fi
			exit 1
		done
	done
done
