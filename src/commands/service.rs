//! The command service's state: [`Commands`] (what every command shares — the store,
//! the fleet, the locks per car and per key, the queue counts, the running commands'
//! channels) and its [`CommandTiming`]. Its methods live beside it, one job per file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::ids::{CommandId, TenantId, VehicleId};
use crate::store::{CommandAreas, CommandRecord};
use crate::sync::KeyLocks;
use crate::vehicles::Fleet;

/// Timing of async commands.
#[derive(Clone, Copy, Debug)]
pub struct CommandTiming {
    /// A sent command whose outcome keyway could not learn becomes `unknown` this long
    /// after it was sent.
    pub timeout: Duration,
    /// Longest pause between polls.
    pub max_poll_interval: Duration,
    /// Callers' commands queued or running per car before `vehicle_busy`.
    pub max_queued: usize,
}

pub(super) type Finals = Mutex<HashMap<CommandId, watch::Sender<Option<CommandRecord>>>>;

/// Runs commands.
pub struct Commands {
    pub(super) store: Arc<dyn CommandAreas>,
    pub(super) fleet: Arc<Fleet>,
    pub(super) registry: Arc<crate::registry::Registry>,
    pub(super) timing: CommandTiming,
    /// Commands running in this process, each with a channel carrying its final record.
    pub(super) running: Finals,
    /// One lock per vehicle: at most one command in flight per car.
    pub(super) vehicle_locks: KeyLocks,
    /// One lock per idempotency key (with its scope): requests under one key are
    /// submitted one at a time in this process.
    pub(super) key_locks: KeyLocks,
    /// Commands queued or running in this process, per vehicle (the queue cap).
    pub(super) queued: Mutex<HashMap<VehicleId, usize>>,
    /// When each (tenant, OEM) last sent a grant's unlock on the OEM's command reserve.
    pub(super) reserve_uses: Mutex<HashMap<(TenantId, String), Instant>>,
    /// This replica's leases.
    pub(super) cluster: Arc<Cluster>,
    /// `command.succeeded` / `command.failed`.
    pub(super) events: Arc<crate::events::Events>,
    /// The gateway's clock.
    pub(super) clock: crate::clock::Clock,
}
