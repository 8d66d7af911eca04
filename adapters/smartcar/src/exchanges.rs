//! Every kind of request the Smartcar adapter makes, with the fixture answering it in
//! `keyway replay` (see `keyway_adapter::exchange`).

use keyway_adapter::{Exchanges, route};

/// The Smartcar adapter's requests (API v2.0).
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
        route!("smartcar", "compatibility.json", [], ["vehicles"], "compatibility",
            GET "/v2.0/compatibility"),
    ],
};

/// The requests of the adapter calling API v3 (the application's token is fetched at
/// the profile's token path, outside this table as every OAuth request is).
pub static EXCHANGES_V3: Exchanges = Exchanges {
    vehicle: "0f7c2a41-5d3e-4b8a-9c61-2e7d4f1a8b03",
    routes: &[
        route!("smartcar", "v3_connections.json", ["vehicles"], [], "the owner's connections",
            GET "/v3/connections"),
        route!("smartcar", "v3_vehicle.json", [], ["vehicles"], "vehicle attributes",
            GET "/v3/vehicles/{id}"),
        route!("smartcar", "v3_islocked.json", ["security"], [], "lock signal",
            GET "/v3/vehicles/{id}/signals/closure-islocked"),
        route!("smartcar", "v3_location.json", ["location"], [], "location signal",
            GET "/v3/vehicles/{id}/signals/location-preciselocation"),
        route!("smartcar", "v3_command_success.json", ["command"], [], "lock or unlock",
            POST "/v3/vehicles/{id}/commands/security/{action}"),
    ],
};
