//! Every kind of request the Volvo adapter makes, with the fixture answering it in
//! `keyway replay` (see `keyway_adapter::exchange`).

use keyway_adapter::{Exchanges, route};

/// The Volvo adapter's requests.
pub static EXCHANGES: Exchanges = Exchanges {
    vehicle: "YV1XZK9V0P2000001",
    routes: &[
        route!("volvo", "vehicles.json", ["vehicles"], [], "vehicle list",
            GET "/connected-vehicle/v2/vehicles"),
        route!("volvo", "vehicle_details.json", [], ["vehicles"], "vehicle details",
            GET "/connected-vehicle/v2/vehicles/{vin}"),
        route!("volvo", "doors.json", ["security"], [], "doors and central lock",
            GET "/connected-vehicle/v2/vehicles/{vin}/doors"),
        route!("volvo", "location.json", ["location"], [], "location",
            GET "/location/v1/vehicles/{vin}/location"),
        route!("volvo", "command_accessibility.json", ["precheck"], ["command"],
            "command accessibility", GET "/connected-vehicle/v2/vehicles/{vin}/command-accessibility"),
        route!("volvo", "command_completed.json", ["command"], [], "lock or unlock",
            POST "/connected-vehicle/v2/vehicles/{vin}/commands/{command}"),
    ],
};
