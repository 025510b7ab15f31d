#!/usr/bin/env bash
# Shared helpers of the fleet/HTTP benchmarks (sourced, not run): build, catalog database, fleets.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
kbgap=$target/release/kbgap
work=$target/bench-fleet
mkdir -p "$work"
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  cargo build --release -p kbgap-cli >/dev/null 2>&1
fi
machine_line() {
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GB RAM; load $(cut -d' ' -f1-3 /proc/loadavg)"
}
# The whole MSRC archive imported once into $work/catalog.db.
catalog_db() {
  local archive=$work/msrc-archive
  if [ ! -f "$archive/.complete" ]; then
    rm -rf "$archive" && mkdir -p "$archive"
    zstd -dc ../shared/fixtures/msrc-archive/cvrf-2016-04_2026-08.tar.zst | tar -x -C "$archive"
    touch "$archive/.complete"
  fi
  if [ ! -f "$work/catalog.db.complete" ]; then
    rm -f "$work"/catalog.db*
    "$kbgap" --db "$work/catalog.db" catalog import "$archive" >/dev/null
    touch "$work/catalog.db.complete"
  fi
  echo "$work/catalog.db"
}
# A copy of the catalog database holding a generated fleet of $1 devices (seed 1), reused.
fleet_db() {
  local n=$1 cat db
  cat=$(catalog_db)
  db=$work/fleet-$n.db
  if [ ! -f "$db.complete" ]; then
    rm -f "$db" "$db"-*
    sqlite_copy "$cat" "$db"
    "$kbgap" --db "$db" bench fleet --devices "$n" --seed 1 --ids "$work/fleet-$n.ids" >&2
    touch "$db.complete"
  fi
  echo "$db"
}
sqlite_copy() { # a consistent copy: the source is closed, so copying the files is enough
  cp "$1" "$2"
  [ -f "$1-wal" ] && cp "$1-wal" "$2-wal" || true
}
# Starts `kbgap serve` on a free port over $1; sets server_pid and base_url.
start_server() {
  local db=$1 log=$work/serve.log
  export KBGAP_JWT_SECRET=bench-secret-0123456789abcdef0123456789abcdef
  "$kbgap" --db "$db" serve --listen 127.0.0.1:0 --no-rate-limit >"$log" 2>"$work/serve.err" &
  server_pid=$!
  trap 'kill $server_pid 2>/dev/null || true; wait $server_pid 2>/dev/null || true' EXIT
  for _ in $(seq 600); do
    if grep -q 'listening on' "$log" 2>/dev/null; then break; fi
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
    sleep 0.2
  done
  base_url=$(sed -n 's/^kbgap listening on //p' "$log")
  [ -n "$base_url" ] || { echo "server did not start" >&2; exit 1; }
}
stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  trap - EXIT
}
server_rss_mb() { echo $(( $(awk '/VmRSS/ {print $2}' /proc/"$server_pid"/status) / 1024 )); }
