#!/usr/bin/env bash
# Measures floorwatch on NATS JetStream on this machine, all on 127.0.0.1:
#   drain K  - readings/s that K bridges take from a preloaded stream;
#   latency  - end-to-end latency from `floorwatch loadgen` at a fixed rate
#              with two bridges running.
# One nats-server (JetStream, MQTT, 4 partitions), the scheduler and the
# bridges run as separate processes; everything lives under WORK and is
# stopped at exit.
#
# Usage: deploy/bench/nats.sh BINARY WORK drain 1|2 [PRELOAD_RATE SECS]
#        deploy/bench/nats.sh BINARY WORK latency RATE SECS
set -euo pipefail

BIN=$(realpath "$1")
WORK=$2
MODE=$3
PARTITIONS=4
NATS_PORT=14222
MQTT_PORT=11883
MONITOR_PORT=18222
API_PORT=18480
NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)

rm -rf "$WORK"
mkdir -p "$WORK"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_http() {
  for _ in $(seq 1 100); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "no response from $1 within 10 s" >&2
  exit 1
}

# Sum of num_pending and num_ack_pending over the partition consumers, and
# their number.
consumers() {
  curl -fs "http://127.0.0.1:$MONITOR_PORT/jsz?consumers=true" | python3 -c '
import json, sys
info = json.load(sys.stdin)
pending = count = 0
for account in info.get("account_details", []):
    for stream in account.get("stream_detail", []):
        for consumer in stream.get("consumer_detail", []) or []:
            if consumer["name"].startswith("floorwatch-p"):
                count += 1
                pending += consumer["num_pending"] + consumer["num_ack_pending"]
print(pending, count)'
}

stream_messages() {
  curl -fs "http://127.0.0.1:$MONITOR_PORT/jsz?streams=true" | python3 -c '
import json, sys
info = json.load(sys.stdin)
for account in info.get("account_details", []):
    for stream in account.get("stream_detail", []):
        if stream["name"] == "FLOORWATCH_READINGS":
            print(stream["state"]["messages"])'
}

cat > "$WORK/nats.conf" <<CONF
server_name: bench
listen: 127.0.0.1:$NATS_PORT
http: 127.0.0.1:$MONITOR_PORT
max_payload: 8MB
jetstream { store_dir: "$WORK/jetstream" }
mqtt { listen: 127.0.0.1:$MQTT_PORT }
mappings = {
  "floorwatch.*.*.reading": "floorwatch.part.{{partition($PARTITIONS,1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}.reading"
}
CONF
"$NATS_SERVER" -c "$WORK/nats.conf" 2>"$WORK/nats.log" &
pids+=($!)
wait_http "http://127.0.0.1:$MONITOR_PORT/healthz"

SECRET=$("$BIN" keys generate)
cat > "$WORK/scheduler.toml" <<CONF
listen = "127.0.0.1:$API_PORT"
database = "$WORK/scheduler.db"
secrets = ["$SECRET"]
CONF
"$BIN" scheduler --config "$WORK/scheduler.toml" 2>"$WORK/scheduler.log" &
pids+=($!)
wait_http "http://127.0.0.1:$API_PORT/healthz"

start_bridge() {
  local name=$1
  cat > "$WORK/$name.toml" <<CONF
source = "nats"
database = "$WORK/$name/bridge.db"
[nats]
servers = ["nats://127.0.0.1:$NATS_PORT"]
instance = "$name"
partitions = $PARTITIONS
[[endpoints]]
url = "http://127.0.0.1:$API_PORT/webhooks"
secret = "$SECRET"
allow_private = true
CONF
  RUST_LOG=warn "$BIN" bridge --config "$WORK/$name.toml" 2>"$WORK/$name.log" &
  pids+=($!)
  bridge_pids+=($!)
}

loadgen() {
  "$BIN" loadgen --broker "mqtt://127.0.0.1:$MQTT_PORT" --api "http://127.0.0.1:$API_PORT" \
    --sensors 100 --rate "$1" --duration "$2" --grace "$3" "${@:4}" \
    --out "$WORK/summary.json" >"$WORK/loadgen.txt" 2>&1 || true
}

bridge_pids=()
case "$MODE" in
drain)
  bridges=$4
  preload_rate=${5:-20000}
  preload_secs=${6:-10}
  # A first bridge creates the stream and the consumers, then stops, so
  # the readings wait in the stream.
  start_bridge setup
  until [ "$(consumers | cut -d' ' -f2)" = "$PARTITIONS" ]; do sleep 0.2; done
  kill -INT "${bridge_pids[0]}"
  wait "${bridge_pids[0]}" || true
  bridge_pids=()
  loadgen "$preload_rate" "$preload_secs" 1
  loaded=$(stream_messages)
  started=$(date +%s.%N)
  for index in $(seq 1 "$bridges"); do start_bridge "bridge-$index"; done
  until [ "$(consumers | cut -d' ' -f1)" = "0" ]; do sleep 0.05; done
  finished=$(date +%s.%N)
  python3 -c "
loaded, seconds = $loaded, $finished - $started
print(f'{loaded} readings in the stream; $bridges bridge(s) took them in {seconds:.2f} s: {loaded / seconds:.0f} readings/s')"
  ;;
latency)
  start_bridge bridge-1
  start_bridge bridge-2
  until [ "$(consumers | cut -d' ' -f2)" = "$PARTITIONS" ]; do sleep 0.2; done
  # Two rounds of the lease loop let the second bridge take its share.
  sleep 15
  loadgen "$4" "$5" 10 "${bridge_pids[@]/#/--pid=}"
  cat "$WORK/loadgen.txt"
  ;;
*)
  echo "unknown mode $MODE: use drain or latency" >&2
  exit 2
  ;;
esac
