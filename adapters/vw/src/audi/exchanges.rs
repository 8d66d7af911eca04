//! Every kind of request the Audi adapter makes, with the fixture answering it in
//! `keyway replay`: the vehicle list from Audi's own fixtures, everything on the BFF
//! from Volkswagen's (the same backend, the same shapes).

use keyway_adapter::{Exchanges, route};

/// The Audi adapter's requests.
pub static EXCHANGES: Exchanges = Exchanges {
    vehicle: "WAUZZZF40RA000001",
    routes: &[
        route!("audi", "user_vehicles.json", ["vehicles"], ["command"], "vehicle list (GraphQL)",
            POST "/vgql/v1/graphql"),
        route!("vw", "selectivestatus_access.json", ["security", "poll"], [], "access status",
            GET "/vehicle/v1/vehicles/{id}/selectivestatus"),
        route!("vw", "parkingposition.json", ["location"], [], "parking position",
            GET "/vehicle/v1/vehicles/{id}/parkingposition"),
        route!("vw", "command_accepted.json", ["command"], [], "lock",
            POST "/vehicle/v1/vehicles/{id}/access/lock"),
        route!("vw", "command_accepted.json", ["command"], [], "unlock",
            POST "/vehicle/v1/vehicles/{id}/access/unlock"),
    ],
};
