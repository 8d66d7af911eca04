//! Every kind of request the Škoda adapter makes, with the fixture answering it in
//! `keyway replay` (see `keyway_adapter::exchange`). A command's own request is the
//! lock or unlock; the S-PIN check before it supports it.

use keyway_adapter::{Exchanges, route};

/// The Škoda adapter's requests.
pub static EXCHANGES: Exchanges = Exchanges {
    vehicle: "TMBJB9NY5RF000001",
    routes: &[
        route!("skoda", "garage.json", ["vehicles"], [], "garage",
            GET "/api/v2/garage"),
        route!("skoda", "garage_vehicle.json", [], ["vehicles", "command"], "garage entry",
            GET "/api/v2/garage/vehicles/{id}"),
        route!("skoda", "vehicle_status.json", ["security"], [], "vehicle status",
            GET "/api/v2/vehicle-status/{id}"),
        route!("skoda", "positions.json", ["location"], [], "positions",
            GET "/api/v1/maps/positions"),
        route!("skoda", "spin_verify_correct.json", [], ["command"], "S-PIN check",
            POST "/api/v1/spin/verify"),
        route!("skoda", "command_accepted.json", ["command"], [], "lock",
            POST "/api/v1/vehicle-access/{id}/lock"),
        route!("skoda", "command_accepted.json", ["command"], [], "unlock",
            POST "/api/v1/vehicle-access/{id}/unlock"),
    ],
};
