//! Every kind of request the Tesla adapter makes, with the fixture answering it in
//! `keyway replay` (see `keyway_adapter::exchange`). The replayed car is a 2017 Model S
//! that takes REST commands, so a captured command answer is read as one.

use keyway_adapter::{Exchanges, route};

/// The Tesla adapter's requests.
pub static EXCHANGES: Exchanges = Exchanges {
    vehicle: "5YJSA1E2XHF000003",
    routes: &[
        route!("tesla", "vehicles.json", ["vehicles"], [], "vehicle list", GET "/api/1/vehicles"),
        route!("tesla", "products.json", ["vehicles"], [], "product list", GET "/api/1/products"),
        route!("tesla", "fleet_status_legacy.json", [], ["command", "vehicles"],
            "fleet status (signed commands, key pairing)", POST "/api/1/vehicles/fleet_status"),
        route!("tesla", "vehicle_data_location.json", ["location"], [], "vehicle data: location",
            GET "/api/1/vehicles/{id}/vehicle_data?endpoints=location_data"),
        route!("tesla", "vehicle_data_state.json", ["security"], [], "vehicle data: vehicle state",
            GET "/api/1/vehicles/{id}/vehicle_data?endpoints=vehicle_state"),
        route!("tesla", "command_ok.json", ["command"], [], "REST command",
            POST "/api/1/vehicles/{id}/command/{verb}"),
        route!("tesla", "signed_command.json", ["command"], [], "signed command",
            POST "/api/1/vehicles/{id}/signed_command"),
        route!("tesla", "wake_up.json", ["wake"], [], "wake-up", POST "/api/1/vehicles/{id}/wake_up"),
        route!("tesla", "vehicle.json", ["power"], ["wake"], "vehicle (power state)",
            GET "/api/1/vehicles/{id}"),
    ],
};
