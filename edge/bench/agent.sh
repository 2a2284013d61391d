#!/usr/bin/env bash
# Measures the release `floorwatch-edge` agent binary on this machine
# (build it with `cargo build --release -p floorwatch-edge --bin floorwatch-edge`):
#   1. resident memory and CPU with one simulated sensor at 1 reading/s for
#      DURATION seconds (default 60), from /proc/PID/status and /proc/PID/stat;
#   2. outbox drain rate: fill the outbox with the broker unreachable, then
#      start mosquitto and time until a subscriber has every stored reading.
# Usage: bash edge/bench/agent.sh [DURATION] [FILL_SECONDS]
# Needs mosquitto, mosquitto_sub and python3; sends traffic only
# to 127.0.0.1.
set -euo pipefail

duration=${1:-60}
fill_seconds=${2:-10}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release/floorwatch-edge"
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$work/mosquitto.conf"

write_config() { # interval_ms outbox
    cat >"$work/edge.toml" <<TOML
broker = "mqtt://127.0.0.1:$port"
client_id = "bench-edge"
[outbox]
path = "$2"
[[sensors]]
kind = "simulated"
id = "bench-1"
interval_ms = $1
TOML
}

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# 1. Memory and CPU at 1 reading/s.
"$mosquitto_bin" -c "$work/mosquitto.conf" 2>/dev/null &
pids+=($!)
sleep 0.5
write_config 1000 "$work/steady.db"
"$bin" --config "$work/edge.toml" 2>"$work/steady.log" &
agent=$!
pids+=($agent)
sleep 2
start_ticks=$(cpu_ticks "$agent")
sleep "$duration"
end_ticks=$(cpu_ticks "$agent")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$agent/status")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$agent/status")
kill -TERM "$agent"; wait "$agent" || true
cpu=$(awk -v t=$((end_ticks - start_ticks)) -v hz="$ticks" -v d="$duration" \
    'BEGIN {printf "%.2f", 100 * t / hz / d}')
echo "steady: duration_s=$duration rss_kib=$rss peak_rss_kib=$hwm cpu_percent=$cpu"

# 2. Drain after an outage: fill with the broker stopped.
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
write_config 1 "$work/outage.db"
"$bin" --config "$work/edge.toml" 2>"$work/fill.log" &
agent=$!
sleep "$fill_seconds"
kill -TERM "$agent"; wait "$agent" || true
stored=$(grep -o 'left_in_outbox=[0-9]*' "$work/fill.log" | tail -1 | cut -d= -f2)

"$mosquitto_bin" -c "$work/mosquitto.conf" 2>/dev/null &
pids+=($!)
sleep 0.5
timeout 120 mosquitto_sub -h 127.0.0.1 -p "$port" -q 1 -t 'floorwatch/+/+/reading' \
    -C "$stored" >/dev/null &
sub=$!
sleep 0.5
write_config 3600000 "$work/outage.db"
started=$(date +%s.%N)
"$bin" --config "$work/edge.toml" 2>"$work/drain.log" &
agent=$!
pids+=($agent)
wait "$sub"
finished=$(date +%s.%N)
awk -v n="$stored" -v a="$started" -v b="$finished" \
    'BEGIN {printf "drain: readings=%d seconds=%.2f readings_per_s=%.0f\n", n, b - a, n / (b - a)}'
