#!/usr/bin/env bash
# The README's first command: build kbgap, import the MSRC archive into an embedded SQLite store
# under target/quickstart/, scan sample devices, then serve the offline API demo (Ctrl-C stops it;
# QUICKSTART_SERVE=0 skips it). Needs ../shared beside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
fixtures=../shared/fixtures
[ -d "$fixtures" ] || { echo "quickstart: $fixtures is missing (clone next to ../shared)" >&2; exit 2; }
command -v zstd >/dev/null || { echo "quickstart: installing zstd"; apt-get update -qq && apt-get install -y -qq zstd; }

cargo build --release --locked -p kbgap-cli
kbgap=target/release/kbgap
work=target/quickstart
mkdir -p "$work"
export KBGAP_DB="$work/kbgap.db"

if [ ! -f "$work/msrc-archive/.complete" ]; then
  rm -rf "$work/msrc-archive" && mkdir -p "$work/msrc-archive"
  zstd -dc "$fixtures/msrc-archive/cvrf-2016-04_2026-08.tar.zst" | tar -x -C "$work/msrc-archive"
  touch "$work/msrc-archive/.complete"
fi

echo "== import the MSRC archive (127 monthly documents, 2016-Apr..2026-Aug)"
"$kbgap" catalog import "$work/msrc-archive"
echo
echo "== catalog"
"$kbgap" catalog stats
echo
echo "== the Defender documentation's example KB"
"$kbgap" catalog show 4540673
echo
echo "== scan: a Windows 10 1803 machine captured on 2019-03-06 with no updates installed"
"$kbgap" scan --as-of 2019-03-06 "$fixtures/systeminfo/wesng-validation/10_1803_x64_proforworkstations_en-us_B_20190306_systeminfo.txt" || true
echo "== explain one answer"
"$kbgap" explain --as-of 2019-03-06 "$fixtures/systeminfo/wesng-validation/10_1803_x64_proforworkstations_en-us_B_20190306_systeminfo.txt" KB4487017 || true

if [ "${QUICKSTART_SERVE:-1}" != 0 ]; then
  echo
  echo "== the Defender-compatible API, offline demo (Ctrl-C to stop)"
  exec "$kbgap" serve --demo --listen "${QUICKSTART_LISTEN:-127.0.0.1:8080}"
fi
