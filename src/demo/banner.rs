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
        let unpaired = named("Unpaired").unwrap_or(first);
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
        out.push_str(&format!(
            "  curl -s -X POST {base}/v1/vehicles/{unpaired}/lock {auth} -H 'Prefer: wait=60'   # Tesla key not paired: 409 with the pairing link\n"
        ));
        // Cars of several makes behind one aggregator (Smartcar), one of which it reads but
        // cannot command.
        let read_only = |v: &&VehicleRecord| v.vin.as_deref() == Some(mocks::SMARTCAR_READ_ONLY);
        let smartcar = d.vehicles.iter().filter(|v| v.oem == "smartcar");
        if let Some(v) = smartcar.clone().find(|v| !read_only(v)) {
            out.push_str(&format!(
                "  curl -s -X POST {base}/v1/vehicles/{}/unlock {auth} -H 'Prefer: wait=60'   # a {} through Smartcar\n",
                v.id,
                v.model.as_deref().unwrap_or("car"),
            ));
        }
        if let Some(v) = smartcar.clone().find(read_only) {
            out.push_str(&format!(
                "  curl -s -X POST {base}/v1/vehicles/{}/unlock {auth} -H 'Prefer: wait=60'   # Smartcar reads this one but cannot command it: failed, not_capable\n",
                v.id
            ));
        }
        if let Some(v) = d.vehicles.iter().find(|v| v.oem == "hyundai") {
            out.push_str(&format!(
                "  # the IONIQ 5 (CCS2) unlocks with its owner's PIN {}, set at start: PUT /v1/accounts/{}/pin '{{\"pin\": \"0000\"}}' makes it 422 pin_rejected\n",
                crate::mocks::HYUNDAI_OWNER_PIN,
                v.account_id
            ));
        }
        // Volkswagen: lock and unlock with the owner's S-PIN; one car without remote access.
        let vw = d.vehicles.iter().filter(|v| v.oem == "vw");
        let vw_read_only = |v: &&VehicleRecord| v.vin.as_deref() == Some(mocks::VW_READ_ONLY);
        if let Some(v) = vw.clone().find(|v| !vw_read_only(v)) {
            out.push_str(&format!(
                "  curl -s -X POST {base}/v1/vehicles/{}/unlock {auth} -H 'Prefer: wait=60'   # a Volkswagen {}: the owner's S-PIN {} goes with it\n",
                v.id,
                v.model.as_deref().unwrap_or("car"),
                mocks::VW_OWNER_SPIN,
            ));
        }
        if let Some(v) = vw.clone().find(vw_read_only) {
            out.push_str(&format!(
                "  curl -s -X POST {base}/v1/vehicles/{}/lock {auth} -H 'Prefer: wait=60'   # its remote access is not active (see its capabilities): 422 not_capable\n",
                v.id
            ));
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
