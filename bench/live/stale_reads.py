#!/usr/bin/env python3
"""Stale reads after confirmed commands, measured on `keyway demo` (issue 32).

Run the demo with its banner in a file, then this:
    keyway demo --listen 127.0.0.1:18080 --data-dir /tmp/kw > /tmp/kw.banner &
    python3 bench/live/stale_reads.py /tmp/kw.banner

For every demo car: lock, unlock, lock with `Prefer: wait=60`; right after each
`succeeded`, a plain GET /security. A read that shows the state from before the
command is stale. Prints one line per command and the count.
"""
import json, re, sys, time, urllib.error, urllib.request

banner = open(sys.argv[1]).read()
base = re.search(r"keyway demo is running at (\S+)", banner).group(1)
token = re.search(r"^KEYWAY_TOKEN=(\S+)", banner, re.M).group(1)


def call(method, path, headers=None):
    h = {"Authorization": f"Bearer {token}", **(headers or {})}
    r = urllib.request.Request(base + path, method=method, headers=h)
    try:
        with urllib.request.urlopen(r, timeout=90) as a:
            return a.status, json.loads(a.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


_, page = call("GET", "/v1/vehicles")
tried = stale = 0
for v in page["vehicles"]:
    for action, locked in (("lock", True), ("unlock", False), ("lock", True)):
        key = f"stale-{v['id']}-{action}-{time.time()}"
        _, c = call("POST", f"/v1/vehicles/{v['id']}/{action}",
                    {"Prefer": "wait=60", "Idempotency-Key": key})
        if c.get("status") != "succeeded":
            print(v["oem"], v.get("model"), action, c.get("status") or c.get("code"))
            continue
        status, s = call("GET", f"/v1/vehicles/{v['id']}/security")
        tried += 1
        bad = status == 200 and s.get("locked") == (not locked)
        stale += bad
        print(v["oem"], v.get("model"), action, "succeeded; read:", s.get("locked"),
              s.get("source"), "STALE" if bad else "ok")
print(f"stale: {stale} of {tried}")
