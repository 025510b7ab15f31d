#!/usr/bin/env bash
# Benchmark (not a test): import of the whole MSRC archive into a fresh SQLite store ("cold"),
# then again with nothing changed, N runs each; prints medians of wall time and peak RSS.
# Baseline side by side: reading the same files (cat > /dev/null), the floor any import pays.
# Usage: scripts/bench-import.sh [RUNS]   (needs ../shared, zstd and GNU time)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release --locked -p kbgap-cli >/dev/null 2>&1
kbgap=$PWD/target/release/kbgap
work=target/bench-import
archive=$work/msrc-archive
if [ ! -f "$archive/.complete" ]; then
  rm -rf "$archive" && mkdir -p "$archive"
  zstd -dc ../shared/fixtures/msrc-archive/cvrf-2016-04_2026-08.tar.zst | tar -x -C "$archive"
  touch "$archive/.complete"
fi
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
measure() { # label, command...
  local label=$1; shift
  local times=() mems=()
  for _ in $(seq "$runs"); do
    [ "$label" = cold ] && rm -f "$work"/bench.db*
    /usr/bin/time -o "$work/time.out" -f '%e %M' "$@" >/dev/null 2>&1
    out=$(tail -1 "$work/time.out")
    times+=("${out% *}"); mems+=("${out#* }")
  done
  printf '%-10s median %6.2f s  (runs: %s)  peak RSS median %5d MB\n' "$label" \
    "$(printf '%s\n' "${times[@]}" | median)" "${times[*]}" \
    "$(( $(printf '%s\n' "${mems[@]}" | median | cut -d. -f1) / 1024 ))"
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GB; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "archive: $(ls "$archive"/*.xml | wc -l) documents, $(du -sm "$archive" | cut -f1) MB"
measure baseline sh -c "cat $archive/*.xml > /dev/null"
measure cold "$kbgap" --db "$work/bench.db" catalog import "$archive"
measure unchanged "$kbgap" --db "$work/bench.db" catalog import "$archive"
