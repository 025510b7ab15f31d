#!/usr/bin/env bash
# Benchmark (not a test): full-fleet assessment of N generated devices stored in SQLite
# (`kbgap bench assess`: the engine over every device with rayon, and the server's snapshot
# build), medians of RUNS runs, RSS before/after loading the devices.
# Usage: scripts/bench-fleet.sh N [RUNS] [bench assess options: --sample K, --engine-only]   (needs ../shared, zstd, GNU time)
#        BACKEND=postgres: the fleet in the PostgreSQL database kbgap_bench_N instead (created once
#        by pg_fleet_db in bench-common.sh, shared with bench-replicas.sh; needs psql).
# The catalog (whole MSRC archive) and each fleet database are built once under
# $CARGO_TARGET_DIR/bench-fleet/ and reused.
source "$(dirname "$0")/bench-common.sh"
n=${1:?usage: bench-fleet.sh N [RUNS] [--sample K] [--engine-only]}
runs=${2:-3}
shift 2 || true
extra=("$@")
machine_line
t0=$(date +%s.%N)
if [ "${BACKEND:-sqlite}" = postgres ]; then
  db=$(pg_fleet_db "$n")
  echo "fleet db ready ($db) in $(echo "$(date +%s.%N) - $t0" | bc) s"
else
  db=$(fleet_db "$n")
  echo "fleet db ready ($(du -m "$db" | cut -f1) MB) in $(echo "$(date +%s.%N) - $t0" | bc) s"
fi
/usr/bin/time -f 'bench assess: wall %e s, peak RSS %M KB' "$kbgap" --db "$db" bench assess --runs "$runs" "${extra[@]}"
