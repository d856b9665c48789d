#!/usr/bin/env bash
# Run the whole test suite twice in a row while an unrelated workload uses the same
# PostgreSQL and Redis, and print both run times. A test that reads beyond its own
# database, schema or key prefix, or a timing window too tight for a busy machine,
# fails here.
#
# The workload: pgbench (TPC-B-like, 4 clients) on its own database `headrace_stress`
# and redis-benchmark (SET/GET/LPUSH/RPOP/SADD/HSET) on Redis database 15, both in loops
# bounded in time, stopped when the suite ends.
#
# Usage: bash scripts/stress_suite.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PGHOST=${PGHOST:-127.0.0.1}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}
LIMIT_S=${STRESS_LIMIT_S:-3600}   # the workload never outlives this, whatever happens

dropdb -h "$PGHOST" -U postgres --if-exists headrace_stress
createdb -h "$PGHOST" -U postgres headrace_stress
pgbench -h "$PGHOST" -U postgres -i -q -s 2 headrace_stress >/dev/null 2>&1

until=$((SECONDS + LIMIT_S))
while [ "$SECONDS" -lt "$until" ]; do
  pgbench -h "$PGHOST" -U postgres -c 4 -j 1 -T 20 headrace_stress >/dev/null 2>&1 || true
done >/dev/null 2>&1 &
pids="$!"
while [ "$SECONDS" -lt "$until" ]; do
  redis-benchmark -h "$REDIS_HOST" --dbnum 15 -c 8 -n 20000 -q \
    -t set,get,lpush,rpop,sadd,hset >/dev/null 2>&1 || true
  sleep 1
done >/dev/null 2>&1 &
pids="$pids $!"

stop() {
  # shellcheck disable=SC2086
  kill $pids 2>/dev/null || true
  pkill -f "pgbench .*headrace_stress" 2>/dev/null || true
  pkill -f "redis-benchmark .*--dbnum 15" 2>/dev/null || true
  redis-cli -h "$REDIS_HOST" -n 15 flushdb >/dev/null 2>&1 || true
  dropdb -h "$PGHOST" -U postgres --if-exists headrace_stress 2>/dev/null || true
}
trap stop EXIT

times=()
for round in 1 2; do
  start=$SECONDS
  echo "== suite run $round, with pgbench and redis-benchmark running beside it"
  bash scripts/test.sh "$@"
  times+=("$((SECONDS - start))")
done
echo "suite run times under load: ${times[0]} s, ${times[1]} s"
