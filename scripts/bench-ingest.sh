#!/usr/bin/env bash
# Benchmark (not a test): device-report ingestion over HTTP (`POST /kbgap/v1/devices`, one
# generated kbgap JSON report per request, keep-alive, wrk + Lua) against a real `kbgap serve`
# on a fresh SQLite database holding the catalog only. Every report is a new device until the
# list wraps. Afterwards: stored device count and the one snapshot rebuild the first read pays.
# Usage: scripts/bench-ingest.sh [SECONDS] [CONNECTIONS] [REPORTS]
#        BACKEND=postgres: a fresh PostgreSQL database kbgap_bench_ingest (catalog imported from
#        the archive; needs psql) instead of the SQLite file.
source "$(dirname "$0")/bench-common.sh"
secs=${1:-20}
conns=${2:-4}
reports=${3:-100000}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)" >&2; exit 1; }
cat=$(catalog_db)
if [ "${BACKEND:-sqlite}" = postgres ]; then
  pg_sql postgres "DROP DATABASE IF EXISTS kbgap_bench_ingest WITH (FORCE)"
  pg_sql postgres "CREATE DATABASE kbgap_bench_ingest"
  [ -n "${PG_SYNC_OFF:-}" ] && pg_sql postgres "ALTER DATABASE kbgap_bench_ingest SET synchronous_commit = off"
  db=$pg_base/kbgap_bench_ingest
  "$kbgap" --db "$db" catalog import "$(msrc_archive)" >/dev/null
else
  db=$work/ingest.db
  rm -f "$db" "$db"-*
  sqlite_copy "$cat" "$db"
fi
jsonl=$work/ingest-$reports.jsonl
[ -f "$jsonl" ] || "$kbgap" --db "$cat" bench fleet --devices "$reports" --seed 99 --jsonl "$jsonl" >&2
start_server "$db"
export KBGAP_JWT_SECRET
token=$("$kbgap" token --role Device.Ingest --ttl 1h)
machine_line
lua=$work/ingest.lua
threads=$(( conns < 2 ? conns : 2 ))
cat >"$lua" <<LUA
local n = 0
local seed = 0
function setup(thread) seed = seed + 1; thread:set("tid", seed) end
function init(args)
  -- Each thread posts its own slice of the reports (thread k: lines k, k+T, k+2T, ...).
  bodies = {}
  local i = 0
  for line in io.lines("$jsonl") do
    if i % $threads == tid - 1 then bodies[#bodies + 1] = line end
    i = i + 1
  end
end
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $token"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, "/kbgap/v1/devices", nil, bodies[(n - 1) % #bodies + 1])
end
LUA
echo "== ingest: wrk -t$threads -c$conns -d${secs}s --latency (POST one report per request; $reports distinct reports)"
wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$lua" "$base_url" |
  grep -E 'Requests/sec|^ +(50|99)%|Non-2xx|Socket errors|requests in'
rtoken=$("$kbgap" token --role Software.Read.All --role Machine.Read.All --ttl 1h)
t0=$(date +%s.%N)
count=$(curl -s -H "Authorization: Bearer $rtoken" "$base_url/api/machines?\$top=1&\$count=true" | head -c 300)
echo "first read after ingestion (snapshot rebuild): $(echo "$(date +%s.%N) - $t0" | bc) s"
stop_server
echo "devices stored: $(BENCH_NO_BUILD=1 "$kbgap" --db "$db" bench assess --runs 1 --engine-only | sed -n 's/^devices: \([0-9]*\).*/\1/p')"
