//! Every kind of request the BMW adapter makes, with the fixture answering it in
//! `keyway replay` (see `keyway_adapter::exchange`).

use keyway_adapter::{Exchanges, route};

/// The BMW adapter's requests.
pub static EXCHANGES: Exchanges = Exchanges {
    vehicle: "WBY31AW090FP00001",
    routes: &[
        route!("bmw", "vehicle_list.json", ["vehicles"], [], "vehicle list",
            POST "/eadrax-vcs/v5/vehicle-list"),
        route!("bmw", "profile.json", [], ["vehicles"], "vehicle profile (model, year)",
            GET "/eadrax-vcs/v5/vehicle-data/profile"),
        route!("bmw", "state.json", ["security", "location"], [], "vehicle state",
            GET "/eadrax-vcs/v4/vehicles/state"),
        route!("bmw", "command_accepted.json", ["command"], ["poll"], "door lock",
            POST "/eadrax-vrccs/v4/presentation/remote-commands/door-lock"),
        route!("bmw", "command_accepted.json", ["command"], [], "door unlock",
            POST "/eadrax-vrccs/v4/presentation/remote-commands/door-unlock"),
        route!("bmw", "command_accepted.json", [], ["position"], "vehicle finder",
            POST "/eadrax-vrccs/v4/presentation/remote-commands/vehicle-finder"),
        route!("bmw", "event_status_executed.json", ["poll"], ["position"], "event status",
            POST "/eadrax-vrccs/v3/presentation/remote-commands/eventStatus"),
        route!("bmw", "event_position.json", ["position"], [], "event position",
            POST "/eadrax-vrccs/v4/presentation/remote-commands/eventPosition"),
    ],
};
