#!/usr/bin/env bash
# Benchmark (not a test): getmissingkbs with REPLICAS (default 2) `kbgap serve --no-rate-limit`
# replicas sharing one PostgreSQL database that holds the whole MSRC archive and N generated
# devices, all replicas driven at once: one wrk process per replica (-t1, CONNECTIONS keep-alive
# connections each), requesting GET /api/machines/{id}/getmissingkbs for random machine ids of the
# fleet; the same shape against GET /kbgap/v1/ping (constant, no auth) is the ceiling. Prints
# per-replica and combined requests/s, p50 and p99 (combined percentiles merge the wrk latency
# histograms), CPU split (servers / PostgreSQL backends / rest of the box), PostgreSQL
# transactions per request, server RSS; RUNS measured runs (default 3), then their medians.
#
# Usage: scripts/bench-replicas.sh N [SECONDS] [CONNECTIONS]   (SECONDS default 10, CONNECTIONS
#        per replica, default 4; env RUNS=3, REPLICAS=2, KBGAP_BENCH_PG=postgres://postgres@127.0.0.1:5432,
#        BACKEND=sqlite runs the same harness over bench-http.sh's SQLite fleet file instead)
# Needs wrk (apt-get install -y wrk), psql, a PostgreSQL server with trust auth for that user.
# The database kbgap_bench_N is created once (catalog import + `kbgap bench fleet --devices N
# --seed 1`) and reused while complete. The servers and the load generators share this machine's
# cores: on a 2-core box the figures are the box's, not one server's.
source "$(dirname "$0")/bench-common.sh"
n=${1:?usage: bench-replicas.sh N [SECONDS] [CONNECTIONS]}
secs=${2:-10}
conns=${3:-4}
runs=${RUNS:-3}
replicas=${REPLICAS:-2}
backend=${BACKEND:-postgres}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)" >&2; exit 1; }
command -v psql >/dev/null || { echo "needs psql (apt-get install -y postgresql-client)" >&2; exit 1; }
hz=$(getconf CLK_TCK)
cores=$(nproc)

machine_line
echo "note: $replicas servers, $replicas wrk processes and PostgreSQL all share these $cores cores"
t0=$(date +%s.%N)
if [ "$backend" = sqlite ]; then
  url=$(fleet_db "$n")
  name=""
  ids=$work/fleet-$n.ids
  echo "database $url (SQLite): $(du -m "$url" | cut -f1) MB, ready in $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s"
else
  url=$(pg_fleet_db "$n")
  name=kbgap_bench_$n
  ids=$work/pg-fleet-$n.ids
  echo "database $name: $(pg_sql postgres "SELECT pg_size_pretty(pg_database_size('$name'))"), $(pg_sql "$name" "SELECT count(*) FROM devices") devices, ready in $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s"
fi

declare -a pids urls
for r in $(seq "$replicas"); do
  t0=$(date +%s.%N)
  start_server "$url" "replica$r"
  pids[r]=$server_pid
  urls[r]=$base_url
  echo "replica $r: $base_url, listening after $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s (first snapshot read from the database), RSS $(server_rss_mb) MB"
done
export KBGAP_JWT_SECRET
token=$("$kbgap" token --role Software.Read.All --role Machine.Read.All --ttl 1h)
for r in $(seq "$replicas"); do
  missingkbs_lua "$ids" "$token" "$work/replica$r-kbs.lua" "$r" "$work/replica$r-getmissingkbs.hist"
  hist_done_lua "$work/replica$r-ping.hist" >"$work/replica$r-ping.lua"
done

ticks() { # utime + stime of the pids given, in clock ticks
  local p t=0
  for p in "$@"; do
    t=$((t + $(sed 's/.*) //' /proc/"$p"/stat | awk '{print $12 + $13}')))
  done
  echo "$t"
}
box_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $5 + $6, $9}' /proc/stat; } # total idle steal
majflt() { # major page faults of the pids given
  local p t=0
  for p in "$@"; do t=$((t + $(sed 's/.*) //' /proc/"$p"/stat | awk '{print $10}'))); done
  echo "$t"
}
psi_some_ms() { # time some task stalled on memory / io since boot, in ms (0 0 without PSI)
  local r
  for r in memory io; do
    awk '/^some/ {sub("total=", "", $5); printf "%d ", $5 / 1000}' /proc/pressure/$r 2>/dev/null || printf '0 '
  done
}
pg_backends() { [ -z "$name" ] || pg_sql "$name" "SELECT pid FROM pg_stat_activity WHERE datname = '$name' AND pid <> pg_backend_pid()"; }
pg_commits() { [ -n "$name" ] || { echo 0; return; }; pg_sql "$name" "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$name'"; }

results=$work/replicas-$backend-$n.results
: >"$results"
# One measured run of route $1 (ping | getmissingkbs), run number $2: every replica at once.
run_route() {
  local what=$1 run=$2 r wpids=() args total=0 reqs=0 hists=() backends srv0 srv1 pg0 pg1 box0 box1 c0 c1 mf0 mf1 psi0 psi1
  backends=$(pg_backends | xargs)
  srv0=$(ticks "${pids[@]}")
  # shellcheck disable=SC2086
  pg0=$(ticks $backends)
  box0=$(box_ticks)
  mf0=$(majflt "${pids[@]}")
  psi0=$(psi_some_ms)
  c0=$(pg_commits)
  for r in $(seq "$replicas"); do
    if [ "$what" = ping ]; then
      args=(-s "$work/replica$r-ping.lua" "${urls[r]}/kbgap/v1/ping")
    else
      args=(-s "$work/replica$r-kbs.lua" "${urls[r]}")
    fi
    wrk -t1 -c"$conns" -d"${secs}s" --latency "${args[@]}" >"$work/replica$r-$what.out" &
    wpids+=($!)
  done
  wait "${wpids[@]}"
  srv1=$(ticks "${pids[@]}")
  # shellcheck disable=SC2086
  pg1=$(ticks $backends)
  box1=$(box_ticks)
  mf1=$(majflt "${pids[@]}")
  psi1=$(psi_some_ms)
  [ -z "$name" ] || sleep 1.5 # PostgreSQL publishes its per-database counters at most once a second
  c1=$(pg_commits)
  for r in $(seq "$replicas"); do
    local out=$work/replica$r-$what.out hist=$work/replica$r-$what.hist rps n bad
    rps=$(sed -n 's/^Requests\/sec: *//p' "$out")
    n=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$out")
    bad=$(grep -E 'Non-2xx|Socket errors' "$out" | xargs || true)
    [ -z "$bad" ] || echo "  replica $r: $bad" >&2
    echo "$what $run $r $rps $(hist_percentile 50 "$hist") $(hist_percentile 99 "$hist")" >>"$results"
    total=$(echo "$total + $rps" | bc)
    reqs=$((reqs + n))
    hists+=("$hist")
  done
  echo "$what $run all $total $(hist_percentile 50 "${hists[@]}") $(hist_percentile 99 "${hists[@]}")" >>"$results"
  awk -v w="$what" -v run="$run" '$1 == w && $2 == run { printf "  run %s %-13s replica %-3s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms\n", run, w, $3, $4, $5, $6 }' "$results"
  # CPU over the run, in % of all cores (100% = the whole box).
  read -r bt0 bi0 bs0 <<<"$box0"
  read -r bt1 bi1 bs1 <<<"$box1"
  read -r pm0 pi0 <<<"$psi0"
  read -r pm1 pi1 <<<"$psi1"
  awk -v s="$((srv1 - srv0))" -v p="$((pg1 - pg0))" -v t="$((bt1 - bt0))" -v i="$((bi1 - bi0))" \
    -v st="$((bs1 - bs0))" -v mf="$((mf1 - mf0))" -v pm="$((pm1 - pm0))" -v pio="$((pi1 - pi0))" \
    -v q="$((c1 - c0))" -v reqs="$reqs" -v hz="$hz" -v w="$what" -v run="$run" 'BEGIN {
      printf "  run %s %-13s cpu: kbgap servers %.0f%%, postgres backends %.0f%%, rest (wrk, others) %.0f%%, idle %.0f%%, steal %.1f%%; %.1f µs server + %.1f µs postgres CPU per request; postgres transactions per request %.2f; stalls: server major faults %d, PSI some memory %d ms / io %d ms\n",
        run, w, 100 * s / t, 100 * p / t, 100 * (t - i - s - p) / t, 100 * i / t, 100 * st / t, 1e6 * s / hz / reqs, 1e6 * p / hz / reqs, q / reqs, mf, pm, pio }' |
    tee -a "$work/replicas-$backend-$n.cpu"
}

# Warm-up: every replica at once, one connection, 2 s.
wpids=()
for r in $(seq "$replicas"); do
  wrk -t1 -c1 -d2s -s "$work/replica$r-kbs.lua" "${urls[r]}" >/dev/null &
  wpids+=($!)
done
wait "${wpids[@]}" # (a bare `wait` would wait for the servers too)
: >"$work/replicas-$backend-$n.cpu"
echo "== $runs runs of: $replicas x (wrk -t1 -c$conns -d${secs}s --latency), one per replica, all at once"
for run in $(seq "$runs"); do
  for what in ping getmissingkbs; do run_route "$what" "$run"; done
done
rss=""
for r in $(seq "$replicas"); do rss="$rss replica $r $(server_rss_mb "${pids[r]}") MB;"; done
echo "server RSS after:$rss"
echo "== medians of $runs runs ($n devices, $replicas replicas on one $backend database, $(sed -n 's/.*load \(.*\)/load at end \1/p' <<<"$(machine_line)"))"
printf '%-14s %-8s %10s %9s %9s\n' route replica 'req/s' 'p50 ms' 'p99 ms'
for what in ping getmissingkbs; do
  for r in $(seq "$replicas") all; do
    med() { awk -v w="$what" -v r="$r" -v c="$1" '$1 == w && $3 == r { print $c }' "$results" | median; }
    printf '%-14s %-8s %10.0f %9.2f %9.2f\n' "$what" "$r" "$(med 4)" "$(med 5)" "$(med 6)"
  done
done
stop_server
