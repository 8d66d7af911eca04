#!/usr/bin/env bash
# Cluster mode, end to end on one machine: a mock Tesla, three `keyway serve` replicas
# on one PostgreSQL schema and one Redis, and nginx round-robin in front (port 8080).
# Links the mock owner's account through the load balancer, locks and unlocks through
# it, kills one replica and keeps going. Ctrl-C (or the end) stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=examples/cluster
BIN=${KEYWAY_BIN:-target/release/keyway}
[ -x "$BIN" ] || cargo build --release -q -p keyway
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }

RUN=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$RUN/nginx.pid" ] && kill "$(cat "$RUN/nginx.pid")" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$RUN"
}
trap cleanup EXIT

export KEYWAY_CRYPTO_KEYS="k1=$("$BIN" gen-key)"
export KEYWAY_AUTH_HS256_SECRET="example-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
psql -q -h 127.0.0.1 -d test -c "DROP SCHEMA IF EXISTS keyway_example CASCADE" 2>/dev/null || true

"$BIN" mock tesla --listen 127.0.0.1:9001 >"$RUN/mock.log" 2>&1 & PIDS+=($!)
for n in 1 2 3; do
    KEYWAY_LISTEN=127.0.0.1:808$n "$BIN" serve --config $HERE/keyway.toml >"$RUN/replica$n.log" 2>&1 &
    PIDS+=($!)
done
cp $HERE/nginx.conf "$RUN/"
nginx -p "$RUN" -c "$RUN/nginx.conf"

wait_up() { for _ in $(seq 1 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
for n in 1 2 3; do wait_up http://127.0.0.1:808$n/readyz; done
wait_up http://127.0.0.1:8080/readyz

LB=http://127.0.0.1:8080
TOKEN=$("$BIN" token --config $HERE/keyway.toml --sub delivery-svc \
    --scope "vehicles:read security:read commands:lock commands:unlock accounts:write")
AUTH="Authorization: Bearer $TOKEN"

echo "== link the owner's Tesla account through the load balancer"
URL=$(curl -s -X POST $LB/v1/accounts/tesla/authorize -H "$AUTH" | sed -E 's/.*"authorization_url":"([^"]+)".*/\1/')
BACK=$(curl -s -o /dev/null -w '%{redirect_url}' "$URL")
curl -s "$BACK" | head -c 300; echo
CAR=$(curl -s $LB/v1/vehicles -H "$AUTH" | sed -E 's/.*"id":"(veh_[a-z0-9]+)".*/\1/')

echo "== the same Idempotency-Key to each replica: one command"
for n in 1 2 3; do
    curl -s -X POST http://127.0.0.1:808$n/v1/vehicles/$CAR/lock -H "$AUTH" \
        -H 'Idempotency-Key: example-lock-1' -H 'Prefer: wait=10' | head -c 160; echo
done
echo "OEM lock commands: $(curl -s http://127.0.0.1:9001/__mock/requests | grep -o 'door_lock' | wc -l)"

echo "== kill replica 2; the load balancer and the others carry on"
kill "${PIDS[2]}"
for step in unlock lock unlock lock; do
    curl -s -X POST $LB/v1/vehicles/$CAR/$step -H "$AUTH" -H "Idempotency-Key: example-$step-$RANDOM" \
        -H 'Prefer: wait=10' -o /dev/null -w "$step: %{http_code}\n"
done
curl -s $LB/v1/vehicles/$CAR/security -H "$AUTH" | head -c 200; echo
echo "== done (logs were in $RUN)"
