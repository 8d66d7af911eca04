//! Every kind of request the GM adapter makes, with the fixture answering it in
//! `keyway replay` (see `keyway_adapter::exchange`). The status of a command and of a
//! location request is one route: its fixture is a completed location request, which
//! reads as a succeeded command too.

use keyway_adapter::{Exchanges, route};

/// The GM adapter's requests.
pub static EXCHANGES: Exchanges = Exchanges {
    vehicle: "1G1FZ6S09P4000001",
    routes: &[
        route!("gm", "vehicles_graphql.json", ["vehicles"], [], "garage (GraphQL)",
            POST "/mbff/garage/v1"),
        route!("gm", "command_v3_in_progress.json", ["command"], ["poll"], "lock",
            POST "/veh/cmd/v3/lock/{vin}"),
        route!("gm", "command_v3_in_progress.json", ["command"], [], "unlock",
            POST "/veh/cmd/v3/unlock/{vin}"),
        route!("gm", "command_v3_in_progress.json", [], ["location"], "location request",
            POST "/veh/cmd/v3/location/{vin}"),
        route!("gm", "location_v3_success.json", ["location", "poll"], [], "request status",
            GET "/api/v1/account/vehicles/{vin}/requests/{id}"),
    ],
};
