//! What handlers are given: the router's state is the gateway ([`ApiState`]), and each
//! handler extracts only the services it uses (axum's `FromRef`: `State<Arc<Fleet>>`,
//! `State<Arc<Commands>>`, …), never the gateway itself — so a handler's signature
//! says what it may touch, and the rules stay in the services.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;

use crate::accounts::Accounts;
use crate::auth::Verifier;
use crate::cluster::Cluster;
use crate::commands::Commands;
use crate::events::Events;
use crate::events::webhooks::Webhooks;
use crate::gateway::Gateway;
use crate::grants::Grants;
use crate::registry::Registry;
use crate::store::Store;
use crate::vehicles::Fleet;
use crate::watch::Watches;

/// The router's state: the assembled gateway, handed out service by service.
#[derive(Clone)]
pub struct ApiState(pub(super) Arc<Gateway>);

impl ApiState {
    /// Verifies callers' tokens (the `Authed` extractor).
    pub fn verifier(&self) -> &Verifier {
        &self.0.verifier
    }
}

/// The longest `Prefer: wait` honoured (`commands.max_wait`).
#[derive(Clone, Copy, Debug)]
pub struct MaxWait(pub Duration);

impl MaxWait {
    /// The wait a caller's `Prefer: wait` asks for (`extract::prefer_wait`), at most
    /// this.
    pub fn cap(self, asked: Option<Duration>) -> Option<Duration> {
        asked.map(|w| w.min(self.0))
    }
}

impl FromRef<ApiState> for MaxWait {
    fn from_ref(s: &ApiState) -> Self {
        MaxWait(s.0.config.commands.max_wait)
    }
}

/// `FromRef<ApiState>` for each service a handler may extract.
macro_rules! substates {
    ($($field:ident: $ty:ty),* $(,)?) => {$(
        impl FromRef<ApiState> for $ty {
            fn from_ref(s: &ApiState) -> Self {
                s.0.$field.clone()
            }
        }
    )*};
}

substates! {
    accounts: Arc<Accounts>,
    cluster: Arc<Cluster>,
    commands: Arc<Commands>,
    events: Arc<Events>,
    fleet: Arc<Fleet>,
    grants: Arc<Grants>,
    registry: Arc<Registry>,
    store: Arc<dyn Store>,
    watches: Arc<Watches>,
    webhooks: Arc<Webhooks>,
}
