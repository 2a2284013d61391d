#!/usr/bin/env bash
# Runs schemathesis against the scheduler's JSON API: builds the floorwatch
# binary, starts a scheduler with a fresh database on a free 127.0.0.1 port,
# creates tasks 1 to 3 with signed incident.opened webhooks, and checks every
# operation of /api/v1/openapi.json with all checks enabled.
#
# Needs cargo, python3 and schemathesis 4 (`pip install schemathesis`).
# Exits with schemathesis's status; 124 means it ran past the time limit.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

# Bounds of the run, in seconds.
ready_timeout=30
schemathesis_timeout=300

cargo build -p floorwatch --manifest-path "$root/Cargo.toml"
binary="${FLOORWATCH_BIN:-$root/target/debug/floorwatch}"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A port that was free a moment ago. Another process could take it before
# the scheduler binds it, and the scheduler would then fail to start.
port="$(python3 -c "import socket
with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    print(s.getsockname()[1])")"
base_url="http://127.0.0.1:$port"
secret="$("$binary" keys generate)"
token="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"

cat >"$work/scheduler.toml" <<EOF
listen = "127.0.0.1:$port"
database = "$work/scheduler.db"
secrets = ["$secret"]
technicians = ["alex", "sam"]

[[api_tokens]]
name = "schemathesis"
token = "$token"
EOF

"$binary" scheduler --config "$work/scheduler.toml" >"$work/scheduler.log" 2>&1 &
server_pid=$!

ready=""
for _ in $(seq $((ready_timeout * 10))); do
  if curl -fsS -o /dev/null "$base_url/readyz" 2>/dev/null; then
    ready=yes
    break
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
if [[ -z "$ready" ]]; then
  echo "the scheduler did not become ready on $base_url within ${ready_timeout}s; its log:" >&2
  cat "$work/scheduler.log" >&2
  exit 1
fi

# Signs each event as Standard Webhooks v1 does: base64 of the HMAC-SHA256,
# keyed with the secret's bytes after `whsec_`, of "{id}.{timestamp}.{body}".
SECRET="$secret" BASE_URL="$base_url" python3 - <<'EOF'
import base64, hashlib, hmac, json, os, time, urllib.request
from datetime import datetime, timedelta, timezone

key = base64.b64decode(os.environ["SECRET"].removeprefix("whsec_"))
now = datetime.now(timezone.utc)


def at(seconds_ago):
    return (now - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")


for number, (site, severity) in enumerate(
    [("plant-1", "warning"), ("plant-2", "critical"), ("plant-1", "critical")], 1
):
    event = {
        "type": "incident.opened",
        "timestamp": at(0),
        "data": {
            "incident_id": f"api-test-{number}",
            "seq": 1,
            "site": site,
            "sensor": f"oven-{number}",
            "metric": "temperature",
            "rule": "temperature-high",
            "condition": "above",
            "threshold": 30.0,
            "clear_threshold": 29.0,
            "value": 31.5,
            "unit": "°C",
            "severity": severity,
            "first_breach_at": at(30),
            "opened_at": at(0),
            "reason": "temperature above 30 °C for 3 readings",
            "window": [{"time": at(10 * (2 - i)), "value": 30.5 + i} for i in range(3)],
        },
    }
    body = json.dumps(event).encode()
    webhook_id = f"msg_api_test_{number}"
    timestamp = str(int(time.time()))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    request = urllib.request.Request(
        os.environ["BASE_URL"] + "/webhooks",
        data=body,
        method="POST",
        headers={
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": f"v1,{signature}",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result = json.load(response)
    if result.get("task_id") != number:
        raise SystemExit(f"webhook {webhook_id} returned {result}, expected task_id {number}")
EOF

# Hypothesis keeps its example database in the working directory, so run
# schemathesis in the temporary one.
cd "$work"
status=0
timeout "$schemathesis_timeout" schemathesis run "$base_url/api/v1/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --max-examples 50 \
  --no-color \
  || status=$?
if ((status != 0)); then
  echo "schemathesis failed with status $status; the scheduler's log:" >&2
  tail -n 50 "$work/scheduler.log" >&2
fi
exit "$status"
