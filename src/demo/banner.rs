//! The demo's banner: where the gateway and each mock listen, the cars, the tokens, and
//! curl lines with the real ids filled in.

use super::Demo;
use crate::mocks;
use crate::store::VehicleRecord;

impl Demo {
    /// The banner: the token and ready-to-paste curl lines.
    pub fn banner(&self) -> String {
        let d = self;
        let base = format!("http://{}", d.addr);
        let auth = "-H \"Authorization: Bearer $KEYWAY_TOKEN\"";
        let mut out = String::new();
        out.push_str(&format!("keyway demo is running at {base}\n"));
        for m in &d.mocks {
            let name = mocks::entry(m.oem).map_or(m.oem, |e| e.name);
            out.push_str(&format!(
                "  {:<18}{}  (inspect: GET /__mock/state; journal: GET /__mock/requests; owner token: POST /__mock/token)\n",
                format!("{name} mock:"),
                m.server.url()
            ));
        }
        out.push_str("  vehicles:\n");
        for v in &d.vehicles {
            let name = v
                .display_name
                .as_deref()
                .map(|n| format!(" \"{n}\""))
                .unwrap_or_default();
            out.push_str(&format!(
                "    {}  {:<8} {}{name}\n",
                v.id,
                v.oem,
                v.model.as_deref().unwrap_or("?"),
            ));
        }
        out.push_str(&format!("\nKEYWAY_TOKEN={}\n", d.token));
        out.push_str(&format!(
            "COURIER_TOKEN={}   (sub demo-courier, scope grants:use)\n\n",
            d.courier_token
        ));
        let named = |name: &str| {
            d.vehicles
                .iter()
                .find(|v| v.display_name.as_deref() == Some(name))
                .map(|v| v.id.as_str())
        };
        let first = named("Blue Thunder")
            .or(d.vehicles.first().map(|v| v.id.as_str()))
            .unwrap_or("VEHICLE_ID");
        let sleepy = named("Sleepy").unwrap_or(first);
        out.push_str("Try (in another shell):\n");
        out.push_str(&format!("  export KEYWAY_TOKEN={}\n", d.token));
        out.push_str(&format!("  export COURIER_TOKEN={}\n", d.courier_token));
        out.push_str(&format!("  curl -s {base}/v1/vehicles {auth}\n"));
        out.push_str(&format!(
            "  curl -s {base}/v1/vehicles/{first}/location {auth}\n"
        ));
        out.push_str(&format!(
            "  curl -s -X POST {base}/v1/vehicles/{first}/unlock {auth} -H 'Prefer: wait=60' -H 'Idempotency-Key: demo-unlock-1'\n"
        ));
        out.push_str(&format!(
            "  curl -s {base}/v1/vehicles/{first}/security {auth}\n"
        ));
        out.push_str(&format!(
            "  curl -s -X POST {base}/v1/vehicles/{first}/lock {auth} -H 'Prefer: wait=60' -H 'Idempotency-Key: demo-lock-1'\n"
        ));
        out.push_str(&format!(
            "  curl -s {base}/v1/vehicles/{first}/state {auth}   # every signal at once\n"
        ));
        out.push_str(&format!(
            "  curl -s -X POST {base}/v1/vehicles/{sleepy}/lock {auth} -H 'Prefer: wait=60'   # asleep: keyway wakes it first\n"
        ));
        out.push_str(&format!(
            "  curl -s {base}/v1/vehicles/{sleepy}/location {auth} -H 'Cache-Control: max-age=0'   # reads wake only when asked\n"
        ));
        // Each mock's own lines: its cars that show something (a Tesla not paired, a
        // make Smartcar cannot command, a PIN that goes with a command, …).
        for m in &d.mocks {
            let Some(entry) = mocks::entry(m.oem) else {
                continue;
            };
            let cars: Vec<&VehicleRecord> = d.vehicles.iter().filter(|v| v.oem == m.oem).collect();
            let named = |vin: &str| cars.iter().copied().find(|v| v.vin.as_deref() == Some(vin));
            let unnamed = || {
                cars.iter().copied().find(|v| {
                    let vin = v.vin.as_deref();
                    !entry.read_only.iter().any(|r| Some(*r) == vin)
                        && !entry
                            .showcase
                            .iter()
                            .any(|s| s.vin.is_some() && s.vin == vin)
                })
            };
            for s in entry.showcase {
                let car = match s.vin {
                    Some(vin) => named(vin),
                    None => unnamed(),
                };
                if let Some(v) = car {
                    out.push_str(&showcase(s.line, &base, auth, v, entry.owner_pin));
                    out.push('\n');
                }
            }
        }
        out.push_str(&format!(
            "  curl -s {base}/v1/vehicles            # no token: 401 problem+json\n"
        ));
        out.push_str("  # in-car delivery with a grant: README.md, \"Delivery grants\"\n");
        out.push_str(
            "  # another tenant (sees none of the above): keyway token --config keyway-data/keyway.toml \\\n    --sub other-service --scope 'vehicles:read commands:unlock grants:write events:read webhooks:write'\n",
        );
        out.push_str("\nCtrl-C stops the demo.\n");
        out
    }
}

/// A mock's banner line about car `v`, its placeholders filled in.
fn showcase(line: &str, base: &str, auth: &str, v: &VehicleRecord, pin: Option<&str>) -> String {
    line.replace("{base}", base)
        .replace("{auth}", auth)
        .replace("{id}", &v.id)
        .replace("{model}", v.model.as_deref().unwrap_or("car"))
        .replace("{account}", &v.account_id)
        .replace("{pin}", pin.unwrap_or(""))
}
