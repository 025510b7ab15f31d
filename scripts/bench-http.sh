#!/usr/bin/env bash
# Benchmark (not a test): getmissingkbs over loopback against a real `kbgap serve` on SQLite
# with N generated devices (random machine ids of the fleet, wrk + Lua), side by side with the
# constant `GET /kbgap/v1/ping` on the same server as the ceiling. Rate limits are off
# (--no-rate-limit): this measures the server, not Defender's quotas.
# Usage: scripts/bench-http.sh N [SECONDS] [CONNECTIONS]   (needs wrk: apt-get install -y wrk)
source "$(dirname "$0")/bench-common.sh"
n=${1:?usage: bench-http.sh N [SECONDS] [CONNECTIONS]}
secs=${2:-15}
conns=${3:-4}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)" >&2; exit 1; }
db=$(fleet_db "$n")
start_server "$db"
export KBGAP_JWT_SECRET
token=$("$kbgap" token --role Software.Read.All --role Machine.Read.All --ttl 1h)
echo "$(machine_line); server RSS $(server_rss_mb) MB with $n devices"
lua=$work/missingkbs.lua
missingkbs_lua "$work/fleet-$n.ids" "$token" "$lua"
threads=$(( conns < 2 ? conns : 2 ))
# Warm-up (first request builds nothing: the snapshot was built at start), then the runs.
wrk -t1 -c1 -d2s -s "$lua" "$base_url" >/dev/null
for what in ping getmissingkbs; do
  if [ $what = ping ]; then args=("$base_url/kbgap/v1/ping"); else args=(-s "$lua" "$base_url"); fi
  echo "== $what: wrk -t$threads -c$conns -d${secs}s --latency"
  wrk -t"$threads" -c"$conns" -d"${secs}s" --latency "${args[@]}" |
    grep -E 'Requests/sec|Transfer/sec|^ +(50|99)%|Non-2xx|Socket errors|requests in'
done
echo "server RSS after: $(server_rss_mb) MB"
stop_server
