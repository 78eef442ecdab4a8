#!/usr/bin/env bash
# A two-node Ray cluster on one machine, recording with `trajarena record --ray ADDRESS`.
#
# Starts a head node (`ray start --head`) and a second node joined to it (`ray start --address`),
# one CPU each, so the tasks run on both; records EPISODES duel episodes through the head's
# address into OUT, checks the files with `trajarena verify`, and stops the two nodes (only
# the processes this script started: each node runs `ray start --block` in its own process
# group, killed by its id). docs/scaling.md shows a run of it.
#
#   examples/ray_two_nodes.sh [OUT] [EPISODES]        # needs: pip install 'trajarena[cli,ray]'
#
# The cluster gets its own --temp-dir (a `ray.init()` elsewhere on this machine never joins it)
# and its own authentication token (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN_PATH), given to every process.
# On real machines, run the two `ray start` lines on two hosts (same command, the head's address)
# and give OUT as a shared folder or an object-store URI (s3://bucket/prefix).
set -euo pipefail

OUT=${1:-data/two_nodes}
EPISODES=${2:-16}
PORT=${PORT:-6391}
BIN=${BIN:-$(dirname "$(command -v python)")}
TMP=$(mktemp -d /tmp/ray-two-nodes.XXXXXX)
HEAD_PID="" NODE_PID=""

stop() {
    for pid in $NODE_PID $HEAD_PID; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    sleep 3
    for pid in $NODE_PID $HEAD_PID; do
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
}
trap stop EXIT

export RAY_USAGE_STATS_ENABLED=0
# Ray's token authentication, with a token of this cluster's own, given to every process below
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$TMP/auth_token"
"$BIN/python" -c "import secrets; print(secrets.token_hex(32), end='')" >"$RAY_AUTH_TOKEN_PATH"
chmod 600 "$RAY_AUTH_TOKEN_PATH"
setsid "$BIN/ray" start --head --block --node-ip-address 127.0.0.1 --port "$PORT" --num-cpus 1 \
    --include-dashboard false --dashboard-agent-listen-port 0 --temp-dir "$TMP" >"$TMP/head.log" 2>&1 &
HEAD_PID=$!
for _ in $(seq 60); do
    grep -q "Ray runtime started" "$TMP/head.log" && break
    sleep 1
done
setsid "$BIN/ray" start --block --address "127.0.0.1:$PORT" --node-ip-address 127.0.0.1 --num-cpus 1 \
    --dashboard-agent-listen-port 0 >"$TMP/node.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 60); do
    grep -q "Ray runtime started" "$TMP/node.log" && break
    sleep 1
done
"$BIN/python" - "$PORT" <<'EOF'
import sys, time
import ray
ray.init(address=f"127.0.0.1:{sys.argv[1]}", log_to_driver=False)
for _ in range(30):
    nodes = [n for n in ray.nodes() if n["Alive"]]
    if len(nodes) == 2:
        break
    time.sleep(1)
print(f"cluster: {len(nodes)} nodes, {ray.cluster_resources().get('CPU', 0):.0f} CPUs")
EOF

"$BIN/trajarena" record duel --agent expert --episodes "$EPISODES" --out "$OUT" --no-progress \
    -s difficulty=3 -s 'frame_shape=[64,96,3]' --ray "127.0.0.1:$PORT"
"$BIN/trajarena" verify "$OUT"
