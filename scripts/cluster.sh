#!/usr/bin/env bash
# make cluster / make cluster-stop: a throwaway cluster on loopback — PostgreSQL (Debian's
# package, its own data directory), 3 datanodes and 2 gateways — with its state and logs in
# $S3G_CLUSTER_DIR (default .cluster/). Everything started here is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${S3G_CLUSTER_DIR:-$PWD/.cluster}
pg_port=${S3G_CLUSTER_PG_PORT:-55432}
meta="postgres://postgres@127.0.0.1:$pg_port/s3g"

as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

wait_for_line() { # file pattern seconds
  for _ in $(seq 1 $(($3 * 10))); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; tail -20 "$1" >&2; return 1
}

start() {
  [ -e "$dir/pids" ] && { echo "a cluster is already running ($dir); make cluster-stop first" >&2; exit 1; }
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$bin" ] || { echo "PostgreSQL is not installed: apt-get install postgresql" >&2; exit 1; }
  mkdir -p "$dir/pg"
  [ "$(id -u)" = 0 ] && chown postgres "$dir/pg"
  as_postgres "$bin/initdb" -D "$dir/pg/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/pg/initdb.log"
  as_postgres "$bin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/postgres.log" -w -o "-h 127.0.0.1 -p $pg_port -k $dir/pg" start >/dev/null
  echo "postgres $(head -1 "$dir/pg/data/postmaster.pid")" >>"$dir/pids"
  "$bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -q -c 'CREATE DATABASE s3g'

  export S3G_ACCESS_KEY=${S3G_ACCESS_KEY:-s3gcluster}
  export S3G_SECRET_KEY=${S3G_SECRET_KEY:-s3gcluster-secret}
  # One key-encryption key for every gateway (and admin: --kek-file $dir/kek).
  (umask 077 && head -c 32 /dev/urandom | base64 >"$dir/kek")
  export S3G_KEK_FILE=$dir/kek
  for i in 1 2 3; do
    bin/s3g datanode --meta "$meta" --data "$dir/datanode$i" --port $((9880 + i)) --admin-port $((9890 + i)) >"$dir/datanode$i.log" 2>&1 &
    echo "datanode$i $!" >>"$dir/pids"
    wait_for_line "$dir/datanode$i.log" '^s3g datanode ready' 30
  done
  for i in 1 2; do
    bin/s3g gateway --meta "$meta" --replication 3 --port $((9868 + 10 * i)) --admin-port $((9869 + 10 * i)) >"$dir/gateway$i.log" 2>&1 &
    echo "gateway$i $!" >>"$dir/pids"
    wait_for_line "$dir/gateway$i.log" '^s3g ready' 30
  done
  echo "metadata:  $meta"
  for i in 1 2 3; do echo "datanode$i: 127.0.0.1:$((9880 + i))"; done
  for i in 1 2; do echo "gateway$i:  http://127.0.0.1:$((9868 + 10 * i))  (admin http://127.0.0.1:$((9869 + 10 * i)))"; done
  echo "keys:      $S3G_ACCESS_KEY / $S3G_SECRET_KEY (KEK: $dir/kek)"
  echo "admin:     bin/s3g admin --meta $meta --kek-file $dir/kek …"
  echo "logs:      $dir/*.log; stop with: make cluster-stop"
}

stop() {
  [ -e "$dir/pids" ] || { echo "no cluster running in $dir"; return 0; }
  # Gateways first, then datanodes, then the database.
  tac "$dir/pids" | while read -r name pid; do
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    echo "stopped $name ($pid)"
  done
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
