//! Every kind of request the Volkswagen adapter makes, with the fixture answering it in
//! `keyway replay` (see `keyway_adapter::exchange`). The access job answers both a lock
//! state read and a command's progress. The BFF's requests ([`BFF`]) are Audi's too.

use keyway_adapter::{Exchanges, Route, route};

/// The BFF's requests, whichever brand lists the cars.
pub const BFF: [Route; 4] = [
    route!("vw", "selectivestatus_access.json", ["security", "poll"], [], "access status",
        GET "/vehicle/v1/vehicles/{id}/selectivestatus"),
    route!("vw", "parkingposition.json", ["location"], [], "parking position",
        GET "/vehicle/v1/vehicles/{id}/parkingposition"),
    route!("vw", "command_accepted.json", ["command"], [], "lock",
        POST "/vehicle/v1/vehicles/{id}/access/lock"),
    route!("vw", "command_accepted.json", ["command"], [], "unlock",
        POST "/vehicle/v1/vehicles/{id}/access/unlock"),
];

/// The Volkswagen adapter's requests.
pub static EXCHANGES: Exchanges = Exchanges {
    vehicle: "WVWZZZE1ZNP000001",
    routes: &[
        route!("vw", "vehicles.json", ["vehicles"], ["command"], "vehicle list",
            GET "/vehicle/v1/vehicles"),
        BFF[0],
        BFF[1],
        BFF[2],
        BFF[3],
    ],
};
