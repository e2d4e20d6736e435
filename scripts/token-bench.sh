#!/bin/sh
# Token issuance, server pinned to one core: the method of docs/benchmarks.md.
#
# Each target server (TestBenchServe in internal/oauth) runs alone on CPU 0
# (taskset, GOMAXPROCS=1) and the load (TestBenchLoad: 16 keep-alive
# connections, 10 s, client_secret_basic, scope publish) on CPU 1. Targets
# run one after the other within a round, rounds repeat, so that the noise
# of a shared machine falls on all of them alike. Each line gives the
# throughput and the tokens per second of server CPU time (the server's
# own user+system time while serving, from getrusage); the summary gives
# per target the median of the rounds and the median of the per-round
# ratios to the plain zitadel/oidc provider.
#
#   scripts/token-bench.sh [ROUNDS] [TARGET...]
#
#   ROUNDS   default 5
#   TARGET   gatehouse, plain (a zitadel/oidc example-style provider),
#            floor-es256 (net/http + Basic check + an ES256 signature per
#            request), floor-http (net/http + Basic check, fixed token);
#            default all four
#   RAW=1    load with oauthload's minimal HTTP client instead of net/http
#            (one core of it can saturate one core of server)
#   TEST_BIN prebuilt `go test -c ./internal/oauth/` binary (default: build one)
set -eu

ROUNDS=${1:-5}
[ $# -gt 0 ] && shift
TARGETS=${*:-gatehouse plain floor-es256 floor-http}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
BIN=${TEST_BIN:-$DIR/oauth.test}
[ -n "${TEST_BIN:-}" ] || go test -c -o "$BIN" ./internal/oauth/

for r in $(seq 1 "$ROUNDS"); do
	for k in $TARGETS; do
		t=$DIR/target-$k
		rm -f "$t" "$t.cpu"
		GATEHOUSE_BENCH_SERVE=$t GATEHOUSE_BENCH_KIND=$k GOMAXPROCS=1 taskset -c 0 "$BIN" -test.run '^TestBenchServe$' -test.timeout 0 >"$DIR/serve-$k.log" 2>&1 &
		pid=$!
		i=0
		while [ ! -s "$t" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
		out=$(GATEHOUSE_BENCH_TARGET=$t GATEHOUSE_BENCH_RAW=${RAW:-} GOMAXPROCS=1 taskset -c 1 "$BIN" -test.run '^TestBenchLoad$' -test.v 2>&1 | grep -o '[0-9]* requests in [^:]*: [0-9]* tokens/s.*errors' || true)
		kill -TERM $pid
		wait $pid || true
		echo "$r $k $(cat "$t.cpu" 2>/dev/null || echo 0s) $out"
	done
done | tee "$DIR/lines" | awk '{
	# round target cpu requests "requests" "in" elapsed tokens/s ...
	cpu = $3; s = cpu + 0
	if (cpu ~ /ms$/) s = s / 1000
	per = (s > 0) ? $4 / s : 0
	printf "round %s %-12s %6d tokens/s  %6.0f tokens per server CPU-s  (server CPU %.2fs, %s)\n", $1, $2, $8, per, s, $0 ~ / 0 errors/ ? "0 errors" : "ERRORS"
}'
python3 - "$DIR/lines" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    cpu = f[2]
    sec = float(cpu[:-2]) / 1000 if cpu.endswith("ms") else float(cpu[:-1]) if cpu.endswith("s") else 0
    if len(f) < 9 or sec == 0:
        continue
    rows.setdefault(f[1], {})[int(f[0])] = (int(f[7]), int(f[3]) / sec)
print("\ntarget        median tokens/s  median tokens per server CPU-s  median ratio to plain (per round)")
for k, by in rows.items():
    ratio = [v[1] / rows["plain"][r][1] for r, v in by.items() if "plain" in rows and r in rows["plain"]]
    print("%-12s  %15.0f  %30.0f  %s" % (k, statistics.median(v[0] for v in by.values()), statistics.median(v[1] for v in by.values()),
          "%.2fx" % statistics.median(ratio) if ratio else "-"))
EOF
