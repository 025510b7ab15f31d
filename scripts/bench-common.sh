#!/usr/bin/env bash
# Shared helpers of the fleet/HTTP benchmarks (sourced, not run): build, catalog database, fleets.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
kbgap=${KBGAP_BIN:-$target/release/kbgap} # KBGAP_BIN: another build to compare (not rebuilt)
work=$target/bench-fleet
mkdir -p "$work"
if [ -z "${BENCH_NO_BUILD:-}" ] && [ -z "${KBGAP_BIN:-}" ]; then
  cargo build --release -p kbgap-cli >/dev/null 2>&1
fi
machine_line() {
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GB RAM; load $(cut -d' ' -f1-3 /proc/loadavg)"
}
# The MSRC archive fixture unpacked once into $work/msrc-archive (prints the directory).
msrc_archive() {
  local archive=$work/msrc-archive
  if [ ! -f "$archive/.complete" ]; then
    rm -rf "$archive" && mkdir -p "$archive"
    zstd -dc ../shared/fixtures/msrc-archive/cvrf-2016-04_2026-08.tar.zst | tar -x -C "$archive"
    touch "$archive/.complete"
  fi
  echo "$archive"
}
# The whole MSRC archive imported once into $work/catalog.db.
catalog_db() {
  local archive
  archive=$(msrc_archive)
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
# PostgreSQL server the PostgreSQL benchmarks create their databases on (trust auth).
pg_base=${KBGAP_BENCH_PG:-postgres://postgres@127.0.0.1:5432}
pg_sql() { # $1 = database, $2 = SQL; prints unaligned tuples
  psql "$pg_base/$1" -v ON_ERROR_STOP=1 -qAt -c "$2"
}
# A PostgreSQL database kbgap_bench_$1 holding the whole MSRC archive and a generated fleet of
# $1 devices (seed 1; ids in $work/pg-fleet-$1.ids); prints its URL. Reused when complete (a
# database comment is written last); otherwise dropped and created again.
pg_fleet_db() {
  local n=$1 name mark ids archive url
  [[ $n =~ ^[0-9]+$ ]] || { echo "pg_fleet_db: N must be a number" >&2; return 1; }
  name=kbgap_bench_$n
  mark="kbgap bench fleet: $n devices, seed 1, complete"
  ids=$work/pg-fleet-$n.ids
  url=$pg_base/$name
  if [ "$(pg_sql postgres "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '$name'")" != "$mark" ] ||
    [ ! -s "$ids" ]; then
    archive=$(msrc_archive)
    echo "creating $name (catalog import + $n devices) ..." >&2
    pg_sql postgres "DROP DATABASE IF EXISTS $name WITH (FORCE)"
    pg_sql postgres "CREATE DATABASE $name"
    "$kbgap" --db "$url" catalog import "$archive" >/dev/null
    "$kbgap" --db "$url" bench fleet --devices "$n" --seed 1 --ids "$ids" >&2
    pg_sql postgres "COMMENT ON DATABASE $name IS '$mark'"
  fi
  echo "$url"
}
# Starts `kbgap serve` on a free port over $1 (log files $work/$2.log/.err, default serve); sets
# server_pid and base_url and adds the pid to server_pids (all stopped on exit or by stop_server).
server_pids=()
start_server() {
  local db=$1 name=${2:-serve} log err
  log=$work/$name.log
  err=$work/$name.err
  export KBGAP_JWT_SECRET=bench-secret-0123456789abcdef0123456789abcdef
  # Emptied here, not only by the child's redirection: the child may not have run yet when the
  # loop below first reads the log, which would then still hold the previous run's address.
  : >"$log"
  : >"$err"
  "$kbgap" --db "$db" serve --listen 127.0.0.1:0 --no-rate-limit >"$log" 2>"$err" &
  server_pid=$!
  server_pids+=("$server_pid")
  trap stop_server EXIT
  local waited=0
  base_url=""
  while [ "$waited" -lt 3000 ]; do # up to 10 minutes (the first snapshot of a large fleet)
    base_url=$(sed -n 's/^kbgap listening on //p' "$log")
    [ -z "$base_url" ] || break
    kill -0 "$server_pid" 2>/dev/null || { echo "server exited: $(tail -c 500 "$err")" >&2; exit 1; }
    sleep 0.2
    waited=$((waited + 1))
  done
  [ -n "$base_url" ] || {
    echo "server did not start after $waited checks ($log: $(head -c 300 "$log"); $err: $(tail -c 300 "$err"))" >&2
    exit 1
  }
}
stop_server() { # stops every server start_server started
  local p
  for p in "${server_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${server_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  server_pids=()
  trap - EXIT
}
server_rss_mb() { echo $(( $(awk '/VmRSS/ {print $2}' /proc/"${1:-$server_pid}"/status) / 1024 )); }
# Writes to $3 a wrk Lua script requesting getmissingkbs for a random machine id of the id file
# $1 with bearer token $2 (seeds differ per thread, and by $4 between wrk processes); with $5, its
# done() writes wrk's latency histogram there ("microseconds count" lines, see hist_percentile).
missingkbs_lua() {
  local ids=$1 token=$2 out=$3 salt=${4:-0} hist=${5:-}
  cat >"$out" <<LUA
local ids = {}
for line in io.lines("$ids") do ids[#ids + 1] = line end
local seed = 0
function setup(thread) seed = seed + 1; thread:set("tseed", seed) end
function init(args) math.randomseed(tseed * 7919 + $salt * 104729) end
wrk.headers["Authorization"] = "Bearer $token"
request = function()
  return wrk.format("GET", "/api/machines/" .. ids[math.random(#ids)] .. "/getmissingkbs")
end
LUA
  [ -z "$hist" ] || hist_done_lua "$hist" >>"$out"
}
# A wrk done() that writes the latency histogram to $1 (for merging several wrk processes).
hist_done_lua() {
  cat <<LUA
function done(summary, latency, requests)
  local f = io.open("$1", "w")
  for i = 1, #latency do local v, c = latency(i); f:write(v, " ", c, "\n") end
  f:close()
end
LUA
}
# The $1-th percentile (e.g. 99) in ms of the merged wrk histograms $2...
hist_percentile() {
  local p=$1
  shift
  cat "$@" | sort -n | awk -v p="$p" '
    { if ($1 == v && NR > 1) c[n] += $2; else { n++; val[n] = $1; c[n] = $2 } v = $1; t += $2 }
    END { s = 0; for (i = 1; i <= n; i++) { s += c[i]; if (s >= p / 100 * t) { printf "%.2f\n", val[i] / 1000; exit } } }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
