//! Every kind of request the Ford adapter makes, with the fixture answering it in
//! `keyway replay` (see `keyway_adapter::exchange`).

use keyway_adapter::{Exchanges, route};

/// The Ford adapter's requests.
pub static EXCHANGES: Exchanges = Exchanges {
    vehicle: "3FMTK3SU0PMA00001",
    routes: &[
        route!("ford", "vehicles.json", ["vehicles"], [], "vehicle list", GET "/v1/vehicles"),
        route!("ford", "telemetry.json", ["security", "location", "poll"], [], "telemetry",
            GET "/v1/telemetry/sources/fordpass/vehicles/{vin}"),
        route!("ford", "status_v5.json", ["security", "location"], [], "FordPass status (older)",
            GET "/api/vehicles/v5/{vin}/status"),
        route!("ford", "command_accepted.json", ["command"], ["poll"], "lock or unlock",
            POST "/v1/command/vehicles/{vin}/commands"),
    ],
};
