#!/usr/bin/env bash
# Interop check: the real Python huggingface_hub client against hub-server.
#
#   crates/hub-server/tests/interop/run.sh [PYTHON]
#
# PYTHON defaults to `python3` and must have huggingface_hub installed
# (python3 -m venv /tmp/hfvenv && /tmp/hfvenv/bin/pip install huggingface_hub).
# Exits non-zero if check.py or sd.py fails; faults.py is printed for information only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${1:-python3}"
work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

cd "$here/../../../.."
cargo build -q -p pipefetch-hub-server --bin hub-server --example sd_fixture
target="$(cargo metadata --format-version 1 --no-deps | "$python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

"$python" "$here/make_root.py" "$work/root"
"$target/debug/examples/sd_fixture" "$work/root" org/sd 60000000

"$target/debug/hub-server" --root "$work/root" --token hf_secret --page-size 2 > "$work/server.out" &
server_pid=$!
for _ in $(seq 100); do
    if [ -s "$work/server.out" ]; then break; fi
    sleep 0.05
done
url="$(head -1 "$work/server.out" | sed 's/^listening on //')"
echo "hub-server at $url"

export HF_ENDPOINT="$url" HUB_ROOT="$work/root" HF_HOME="$work/home" HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN
HF_HUB_CACHE="$work/cache1" "$python" "$here/check.py"
HF_HUB_CACHE="$work/cache2" "$python" "$here/sd.py"
HF_HUB_CACHE="$work/cache3" "$python" "$here/faults.py" || echo "(faults.py is informational)"
