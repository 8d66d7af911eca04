//! keyway's one end-to-end test binary: each module starts what it needs on ephemeral
//! loopback ports (the demo's gateway and the mocks a test names, the machine's
//! PostgreSQL and Redis, Redis servers of its own) and checks behaviour from outside
//! through HTTP. One binary links the workspace once; nextest still runs every test in
//! its own process.

mod common;
mod sim;

mod api;
mod audi;
mod cluster;
mod demo;
mod grants;
mod hostile;
mod outcomes;
mod pins;
mod replay;
mod resilience;
mod routes;
mod simulation;
mod skoda;
mod smartcar_v3;
mod store;
mod tenancy;
mod tokens;
mod vw;
mod watch;
