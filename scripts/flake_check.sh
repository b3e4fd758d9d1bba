#!/usr/bin/env bash
# Proves the flow tests do not flake under load: runs them RUNS times (default 20) in one pytest
# process while a CPU hog keeps every core busy, and fails on any failure.
#
#   scripts/flake_check.sh                 # 20 runs of the environment flow tests
#   scripts/flake_check.sh 5 tests/commands/deploy/test_deploy.py
#
# The hog is stress-ng where it is installed (apt-get install stress-ng), otherwise one Python
# busy loop per core. It is stopped when the script ends, however it ends. FLAKE_HOG_CORES
# sets how many cores it holds (default: all): CI runs this beside the test suite, which keeps
# one core busy itself, so there one hog process makes both cores busy.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-20}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(tests/commands/environments/test_environment_flow.py)
fi
cores="${FLAKE_HOG_CORES:-$(nproc)}"

hog_pids=()
stop_hog() {
  for pid in "${hog_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap stop_hog EXIT INT TERM

if [ "$cores" -eq 0 ]; then
  hog="no hog (the machine's own load)"
elif command -v stress-ng >/dev/null 2>&1; then
  stress-ng --cpu "$cores" --quiet >/dev/null 2>&1 &
  hog_pids+=("$!")
  hog="stress-ng --cpu $cores"
else
  for _ in $(seq 1 "$cores"); do
    python3 -c 'while True: pass' &
    hog_pids+=("$!")
  done
  hog="$cores Python busy loops"
fi

repeated=()
for _ in $(seq 1 "$runs"); do
  repeated+=("${targets[@]}")
done

echo "flake check: ${targets[*]} x $runs, with $hog holding $cores of $(nproc) cores"
started=$SECONDS
status=0
uv run pytest -q -p no:cacheprovider --keep-duplicates "${repeated[@]}" || status=$?
echo "flake check: $((SECONDS - started)) s, load average $(cut -d' ' -f1-3 /proc/loadavg), exit $status"
exit "$status"
