//! Every kind of request the Smartcar adapter makes, with the fixture answering it in
//! `keyway replay` (see `keyway_adapter::exchange`).

use keyway_adapter::{Exchanges, route};

/// The Smartcar adapter's requests.
pub static EXCHANGES: Exchanges = Exchanges {
    vehicle: "0f7c2a41-5d3e-4b8a-9c61-2e7d4f1a8b03",
    routes: &[
        route!("smartcar", "vehicles.json", ["vehicles"], [], "vehicle list",
            GET "/v2.0/vehicles"),
        route!("smartcar", "vin.json", [], ["vehicles"], "VIN",
            GET "/v2.0/vehicles/{id}/vin"),
        route!("smartcar", "security.json", ["security"], [], "lock status",
            GET "/v2.0/vehicles/{id}/security"),
        route!("smartcar", "location.json", ["location"], [], "location",
            GET "/v2.0/vehicles/{id}/location"),
        route!("smartcar", "command_success.json", ["command"], [], "lock or unlock",
            POST "/v2.0/vehicles/{id}/security"),
        route!("smartcar", "vehicle.json", [], ["vehicles"], "vehicle attributes",
            GET "/v2.0/vehicles/{id}"),
    ],
};
