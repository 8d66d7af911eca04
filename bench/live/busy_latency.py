#!/usr/bin/env python3
"""Latency from a change in a mock to its `vehicle.state_changed` event, for a grant's
car while its relock is due (the watcher's busy cadence), measured on `keyway demo`.

    keyway demo --listen 127.0.0.1:18081 --data-dir /tmp/kw2 > /tmp/kw2.banner &
    python3 bench/live/busy_latency.py /tmp/kw2.banner

One car each of BMW, Volvo, Ford, Hyundai/Kia and Tesla ("Blue Thunder") gets a grant
whose relock is 15 minutes away; the courier unlocks it. Then, ten times, the trunk is
opened or closed through each mock's `PATCH /__mock/vehicles/{vin}` and the time to the
event naming `doors` is taken from the SSE stream. Prints median and max per OEM.
"""
import datetime, json, re, statistics, sys, threading, time, urllib.error, urllib.request

banner = open(sys.argv[1]).read()
base = re.search(r"keyway demo is running at (\S+)", banner).group(1)
token = re.search(r"^KEYWAY_TOKEN=(\S+)", banner, re.M).group(1)
courier = re.search(r"^COURIER_TOKEN=(\S+)", banner, re.M).group(1)
mocks = {m.group(1).strip(): m.group(2)
         for m in re.finditer(r"^\s+(\S+(?: \S+)?) mock:\s*(http://\S+)", banner, re.M)}
NAMES = {"bmw": "BMW", "volvo": "Volvo", "ford": "Ford", "hyundai": "Hyundai/Kia", "tesla": "Tesla"}


def call(method, url, bearer=None, headers=None, body=None):
    h = {"Content-Type": "application/json", **(headers or {})}
    if bearer:
        h["Authorization"] = f"Bearer {bearer}"
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(url, method=method, headers=h, data=data)
    try:
        with urllib.request.urlopen(r, timeout=90) as a:
            return a.status, json.loads(a.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


events = []


def listen():
    r = urllib.request.Request(base + "/v1/events?types=vehicle.state_changed",
                               headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(r, timeout=600) as stream:
        for line in stream:
            line = line.decode().strip()
            if line.startswith("data:"):
                d = json.loads(line[5:])
                events.append((time.time(), d.get("vehicle_id"), d.get("data", {}).get("changed", [])))


threading.Thread(target=listen, daemon=True).start()
_, page = call("GET", base + "/v1/vehicles", token)
cars = {}
for v in page["vehicles"]:
    if v["oem"] in NAMES and v["oem"] not in cars and (
            v["oem"] != "tesla" or v.get("display_name") == "Blue Thunder"):
        cars[v["oem"]] = v
until = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=30))
for oem, v in cars.items():
    _, g = call("POST", base + "/v1/grants", token, body={
        "vehicle_id": v["id"], "grantee": "demo-courier", "relock_after_s": 900,
        "not_after": until.strftime("%Y-%m-%dT%H:%M:%SZ")})
    _, u = call("POST", base + f"/v1/grants/{g['id']}/unlock", courier,
                {"Prefer": "wait=60", "Idempotency-Key": f"busy-{oem}-{time.time()}"})
    print(oem, "unlocked by the courier:", u.get("status"))
time.sleep(8)
latency = {oem: [] for oem in cars}
for i in range(10):
    sent = {}
    for oem, v in cars.items():
        call("PATCH", f"{mocks[NAMES[oem]]}/__mock/vehicles/{v['vin']}",
             body={"doors": {"trunk": i % 2 == 0}})
        sent[oem] = time.time()
    time.sleep(7)
    for oem, v in cars.items():
        seen = [t for (t, vid, changed) in events
                if vid == v["id"] and "doors" in changed and t >= sent[oem]]
        if seen:
            latency[oem].append(seen[0] - sent[oem])
for oem, l in latency.items():
    l.sort()
    print(f"{oem}: n={len(l)}" + (f" median={statistics.median(l):.1f}s max={l[-1]:.1f}s" if l else ""))
