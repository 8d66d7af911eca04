//! Every kind of request the Audi adapter makes, with the fixture answering it in
//! `keyway replay`: the vehicle list from Audi's own fixtures, everything on the BFF
//! from Volkswagen's (the same backend, the same shapes: [`crate::exchanges::BFF`]).

use keyway_adapter::{Exchanges, route};

use crate::exchanges::BFF;

/// The Audi adapter's requests.
pub static EXCHANGES: Exchanges = Exchanges {
    vehicle: "WAUZZZF40RA000001",
    routes: &[
        route!("audi", "user_vehicles.json", ["vehicles"], ["command"], "vehicle list (GraphQL)",
            POST "/vgql/v1/graphql"),
        BFF[0],
        BFF[1],
        BFF[2],
        BFF[3],
    ],
};
