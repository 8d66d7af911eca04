# Shared by bench/run and bench/instructions (sourced, not run): installing tools, reading
# env.json, waiting for readiness, and the nginx configuration of the static OEM, the
# pass-through and the ceiling.

need() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "bench: installing $2"
        apt-get update -qq && apt-get install -y -qq "$2" >/dev/null
    fi
}
json() { python3 -c "import json,sys; print(json.load(open('$1'))$2)"; }
wait_for() { # file pattern seconds
    for _ in $(seq 1 "$3"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 1; done
    echo "bench: timed out waiting for $2 in $1" >&2; cat "$1" >&2; exit 1
}

# The canned answers: a Fleet API location read, and a keyway-sized location answer.
LOCATION='{"response":{"id":100021,"vehicle_id":99021,"vin":"5YJ3E1EA0LF000000","state":"online","in_service":false,"id_s":"100021","api_version":71,"drive_state":{"gps_as_of":1764680000,"heading":289,"latitude":52.520008,"longitude":13.404954,"native_latitude":52.520008,"native_location_supported":1,"native_longitude":13.404954,"native_type":"wgs","power":0,"shift_state":null,"speed":null,"timestamp":1764680000000}}}'
CEILING='{"vehicle_id":"veh_aaaaaaaaaaaaaaaaaaaaaaaaaa","latitude":52.520008,"longitude":13.404954,"heading":289.0,"accuracy_m":null,"recorded_at":"2026-12-02T10:00:00Z","age_s":0}'
nginx_conf() { # out-dir (absolute); uses the *_PORT variables
python3 - "$1/nginx.conf" "$1" "$LOCATION" "$CEILING" "$MOCK_PORT" "$OEM_PORT" "$NGINX_PORT" "$CEILING_PORT" <<'PY'
import sys
conf, out, location, ceiling, mock, oem, ngx, ceil = sys.argv[1:]
proxy = """
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;"""
text = f"""worker_processes auto;
pid {out}/nginx.pid;
error_log {out}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    upstream mock {{ server 127.0.0.1:{mock}; keepalive 256; }}
    upstream oem {{ server 127.0.0.1:{oem}; keepalive 256; }}
    server {{   # the static OEM
        listen 127.0.0.1:{oem};
        location ~ ^/api/1/vehicles/[^/]+/vehicle_data$ {{
            default_type application/json;
            return 200 '{location}';
        }}
        location / {{
            proxy_pass http://mock;{proxy}
        }}
    }}
    server {{   # nginx pass-through to the static OEM
        listen 127.0.0.1:{ngx};
        location / {{
            proxy_pass http://oem;{proxy}
        }}
    }}
    server {{   # the ceiling: a location answer served from memory
        listen 127.0.0.1:{ceil};
        location / {{
            default_type application/json;
            return 200 '{ceiling}';
        }}
    }}
}}
"""
open(conf, "w").write(text)
PY
}
