#!/bin/sh
# run.sh ROUNDS REGEX [BENCHTIME] > results.txt
#
# Runs the benchmarks matching REGEX ROUNDS times, one round after the
# other, from one compiled test binary. `go test -count N` would run each
# benchmark N times in a row, so on a shared machine whose speed drifts
# over minutes one parser could get the fast minutes and another the slow
# ones; interleaved rounds give every parser the same conditions, and
# benchstat then compares medians over the rounds.
set -eu
rounds=$1
regex=$2
benchtime=${3:-1s}
cd "$(dirname "$0")"
bin=$(mktemp -d)/parse.test
go test -c -o "$bin" .
i=0
while [ "$i" -lt "$rounds" ]; do
	"$bin" -test.run '^$' -test.bench "$regex" -test.benchtime "$benchtime" -test.benchmem -test.count 1
	i=$((i + 1))
done
rm -r "$(dirname "$bin")"
