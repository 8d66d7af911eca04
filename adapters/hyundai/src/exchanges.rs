//! Every kind of request the Hyundai/Kia adapter makes, with the fixture answering it
//! in `keyway replay` (see `keyway_adapter::exchange`). A lock state is read from the
//! older status or, for CCS2 cars, their own path: a captured state answers both; a
//! CCS2 car's door control goes through a control token made from the owner's PIN.

use keyway_adapter::{Exchanges, route};

/// The Hyundai/Kia adapter's requests.
pub static EXCHANGES: Exchanges = Exchanges {
    vehicle: "4b7a2e10-0000-4000-8000-000000000001",
    routes: &[
        route!("hyundai", "vehicles.json", ["vehicles"], [], "vehicle list",
            GET "/api/v1/spa/vehicles"),
        route!("hyundai", "location.json", ["location"], [], "parking location",
            GET "/api/v1/spa/vehicles/{id}/location/park"),
        route!("hyundai", "status.json", ["security"], [], "status",
            GET "/api/v1/spa/vehicles/{id}/status/latest"),
        route!("hyundai", "ccs2_carstatus.json", ["security"], [], "CCS2 car status",
            GET "/api/v1/spa/vehicles/{id}/ccs2/carstatus/latest"),
        route!("hyundai", "command_accepted.json", ["command"], ["poll"], "door control",
            POST "/api/v1/spa/vehicles/{id}/control/door"),
        route!("hyundai", "control_token.json", [], ["command"], "control token from the PIN",
            PUT "/api/v1/user/pin"),
        route!("hyundai", "command_accepted.json", [], ["command", "poll"], "CCS2 door control",
            POST "/api/v2/spa/vehicles/{id}/ccs2/control/door"),
        route!("hyundai", "records.json", ["poll"], [], "notification records",
            GET "/api/v1/spa/notifications/{id}/records"),
    ],
};
