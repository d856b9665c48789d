#!/usr/bin/env bash
# Run the whole test suite twice in a row while an unrelated workload uses the same
# PostgreSQL and Redis, and print both run times and results. A test that reads beyond
# its own database, schema or key prefix, or a timing window too tight for a busy
# machine, fails here.
#
# The workload: pgbench (TPC-B-like) on a database of its own, `headrace_stress_<pid>`,
# and redis-benchmark (SET/GET/LPUSH/RPOP/SADD/HSET) on keys under its own prefix
# `hrstress:<pid>:` in the tests' Redis database. Both loop until the suite ends; then
# they are stopped and their database and keys removed, whatever the suite's result.
#
# Usage:
#   bash scripts/stress_suite.sh                  # the full suite, as scripts/test.sh runs it
#   bash scripts/stress_suite.sh tests/queue -q   # arguments go to pytest
# Environment: STRESS_PYTHON=/path/to/python runs `$STRESS_PYTHON -m pytest` instead of
# scripts/test.sh (no virtualenv set-up); STRESS_ROUNDS (2), STRESS_PG_CLIENTS (4),
# STRESS_LIMIT_S (3600: the workload never outlives it), PGHOST, REDIS_HOST, REDIS_PORT,
# STRESS_REDIS_DB (0, the database the tests use).
set -uo pipefail
cd "$(dirname "$0")/.."
PGHOST=${PGHOST:-127.0.0.1}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-6379}
REDIS_DB=${STRESS_REDIS_DB:-0}
ROUNDS=${STRESS_ROUNDS:-2}
CLIENTS=${STRESS_PG_CLIENTS:-4}
LIMIT_S=${STRESS_LIMIT_S:-3600}
DB="headrace_stress_$$"
PREFIX="hrstress:$$"
LOGS=$(mktemp -d)
pids=()

redis() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" -n "$REDIS_DB" "$@"; }

stop() {
  # Each loop runs in its own process group (setsid): killing the group ends the
  # loop and the pgbench or redis-benchmark it is running, and nothing else.
  for pid in "${pids[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    while kill -0 -- "-$pid" 2>/dev/null; do sleep 0.2; done
  done
  redis --scan --pattern "$PREFIX:*" | xargs -r -n 500 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" -n "$REDIS_DB" del >/dev/null
  dropdb -h "$PGHOST" -U postgres --if-exists --force "$DB" 2>/dev/null \
    || dropdb -h "$PGHOST" -U postgres --if-exists "$DB"
  left_keys=$(redis --scan --pattern "$PREFIX:*" | wc -l)
  left_db=$(psql -h "$PGHOST" -U postgres -d postgres -tAc "SELECT count(*) FROM pg_database WHERE datname = '$DB'")
  echo "workload stopped: $(cat "$LOGS"/pg.* 2>/dev/null | grep -c '^number of transactions actually processed') pgbench runs," \
    "$(grep -ho 'transactions actually processed: [0-9]*' "$LOGS"/pg.* 2>/dev/null | awk '{s += $4} END {print s + 0}') transactions;" \
    "$(cat "$LOGS"/redis.* 2>/dev/null | grep -c 'requests per second') redis-benchmark runs;" \
    "left behind: $left_keys keys under $PREFIX:, $left_db database $DB"
  rm -rf "$LOGS"
}
trap stop EXIT
suite=""
# The suite runs in the background, in a process group of its own, so that a signal is
# handled at once (bash runs a trap only after a foreground command ends): the trap
# stops the suite and its children, then the exit cleans up.
trap '[ -n "$suite" ] && kill -TERM -- "-$suite" 2>/dev/null; exit 130' INT TERM

createdb -h "$PGHOST" -U postgres "$DB" || exit 1
pgbench -h "$PGHOST" -U postgres -i -q -s 2 "$DB" >"$LOGS/init" 2>&1 || { cat "$LOGS/init"; exit 1; }
export DB PGHOST CLIENTS REDIS_HOST REDIS_PORT REDIS_DB PREFIX LOGS LIMIT_S

setsid bash -c '
  i=0
  while [ "$SECONDS" -lt "$LIMIT_S" ]; do
    i=$((i + 1))
    pgbench -h "$PGHOST" -U postgres -c "$CLIENTS" -j 1 -T 20 "$DB" >"$LOGS/pg.$i" 2>&1
  done' &
pids+=("$!")
setsid bash -c '
  i=0
  while [ "$SECONDS" -lt "$LIMIT_S" ]; do
    i=$((i + 1))
    for command in "set $PREFIX:k:__rand_int__ v" "get $PREFIX:k:__rand_int__" \
        "lpush $PREFIX:list __rand_int__" "rpop $PREFIX:list" "sadd $PREFIX:set __rand_int__" \
        "hset $PREFIX:hash f:__rand_int__ v"; do
      # shellcheck disable=SC2086
      redis-benchmark -h "$REDIS_HOST" -p "$REDIS_PORT" --dbnum "$REDIS_DB" -c 8 -n 5000 -r 100000 \
        -q $command >>"$LOGS/redis.$i" 2>&1
    done
    sleep 1
  done' &
pids+=("$!")

# The workload is running before the suite starts.
for _ in $(seq 50); do
  active=$(psql -h "$PGHOST" -U postgres -d postgres -tAc "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB'")
  [ "${active:-0}" -gt 0 ] && break
  sleep 0.2
done
echo "workload running: $active pgbench connections to $DB, redis-benchmark on keys $PREFIX:* (db $REDIS_DB)"

results=()
failed=0
for round in $(seq "$ROUNDS"); do
  echo "== suite run $round of $ROUNDS, with pgbench and redis-benchmark running beside it"
  start=$SECONDS
  if [ -n "${STRESS_PYTHON:-}" ]; then
    setsid "$STRESS_PYTHON" -m pytest "$@" &
  else
    setsid bash scripts/test.sh "$@" &
  fi
  suite=$!
  wait "$suite"
  code=$?
  suite=""
  [ "$code" -eq 0 ] && outcome=passed || { outcome="FAILED (exit $code)"; failed=1; }
  results+=("run $round: $outcome in $((SECONDS - start)) s")
done
echo "== suite under load: ${results[*]}"
exit "$failed"
