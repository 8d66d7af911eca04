//! The command lifecycle: record → send → (poll) → final outcome, with the rules that
//! make a remote unlock safe.
//!
//! - A command is written to the store *before* the OEM hears of it, and marked `sent`
//!   just before each hand-over, so after a crash keyway knows whether it may have
//!   reached the car.
//! - A caller's command is admitted and recorded by [`submit`](Commands::submit): an
//!   idempotency key is claimed in the same transaction as the command, so the same key
//!   and request return the same command (no second OEM call, even while the first is
//!   in flight); the same key with another request is refused.
//! - One command at a time per vehicle (a per-vehicle async lock, held for the command's
//!   whole life).
//! - Each recorded command runs in its own task (`start`) as its own value, a `Run`
//!   holding its record, car, OEM and timing; how it reaches an honest outcome —
//!   `succeeded`, `failed` only when certain, otherwise `unknown` — is `run`'s job:
//!   never a second send while the first may still execute. What the car shows
//!   decides a command whose answer was lost, and an `unknown` command is watched for
//!   the OEM's command window (`reconcile`); what keyway learns is recorded as
//!   `command.resolved`.
//! - Pending commands found at start-up are resumed: never-sent ones are sent, accepted
//!   async ones are polled, sent-but-unanswered ones are watched, never sent again.
//!
//! In cluster mode (a shared store) each command is leased to the replica running it
//! and renewed while it runs; a replica that dies stops renewing, and another takes the
//! command over once the lease lapses ([`Commands::take_over`]), resuming it by the
//! rules above. The lease is checked just before the command is handed to the OEM and
//! before its outcome is written, so a replica that lost it neither sends nor records.
//! The per-car rule holds across replicas through a `car:<id>` lease, and a finished
//! command tells every replica to drop its cached state of the car.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

mod acknowledge;
mod error;
mod guard;
mod lease;
mod observation;
mod reconcile;
mod run;
mod service;
mod start;
mod submit;
mod verdict;
mod view;
mod visible;

pub use error::CommandError;
pub use guard::{Throttled, Unguarded, UnlockGuard};
pub use lease::sweep;
pub use service::{CommandTiming, Commands};
pub use submit::{Request, Submission};
pub use view::{CommandEvent, CommandView, retry_after, view};
pub use visible::ReadError;

use crate::cluster::Cluster;
use crate::store::StoreError;
use crate::store::{CommandAreas, CommandRecord, CommandStatus};
use crate::sync::{KeyLocks, lock};
use crate::vehicles::Fleet;

impl Commands {
    /// A command runner.
    pub fn new(
        store: Arc<dyn CommandAreas>,
        fleet: Arc<Fleet>,
        registry: Arc<crate::registry::Registry>,
        timing: CommandTiming,
        cluster: Arc<Cluster>,
        events: Arc<crate::events::Events>,
        clock: crate::clock::Clock,
    ) -> Arc<Self> {
        Arc::new(Self {
            clock,
            store,
            fleet,
            registry,
            timing,
            running: Mutex::default(),
            vehicle_locks: KeyLocks::default(),
            key_locks: KeyLocks::default(),
            queued: Mutex::default(),
            reserve_uses: Mutex::default(),
            cluster,
            events,
        })
    }

    /// Now, by the gateway's clock.
    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    /// How `c` is shown, now.
    pub fn view(&self, c: &CommandRecord) -> CommandView {
        view(c, self.now())
    }

    /// The command's record once it is final, or as it stands after `max` — whichever
    /// comes first.
    pub async fn wait(&self, id: &str, max: Duration) -> Result<Option<CommandRecord>, StoreError> {
        let deadline = Instant::now() + max;
        let rx = lock(&self.running).get(id).map(watch::Sender::subscribe);
        if let Some(mut rx) = rx {
            let waited = tokio::time::timeout_at(deadline, rx.wait_for(Option::is_some))
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|done| done.clone());
            return match waited {
                Some(done) => Ok(Some(done)),
                None => Ok(self.store.command(id).await?),
            };
        }
        // Not running here (finished, or run by another process): read the store.
        loop {
            let record = self.store.command(id).await?;
            let pending = record
                .as_ref()
                .is_some_and(|r| r.status == CommandStatus::Pending);
            if !pending || Instant::now() >= deadline {
                return Ok(record);
            }
            self.clock
                .sleep((deadline - Instant::now()).min(Duration::from_millis(50)))
                .await;
        }
    }

    /// Waits until no command runs in this process, or `max` passes; returns how many
    /// are still running (they stay `pending` in the store and resume at next start).
    /// Then gives up every lease this replica holds (cars, relocks, commands), so in a
    /// cluster another replica takes over at once instead of after the lease lapses.
    pub async fn drain(&self, max: Duration) -> usize {
        let deadline = Instant::now() + max;
        let left = loop {
            let running = lock(&self.running).len();
            if running == 0 || Instant::now() >= deadline {
                break running;
            }
            self.clock.sleep(Duration::from_millis(50)).await;
        };
        if self.cluster.shared
            && let Err(e) = self.store.release_all(&self.cluster.replica).await
        {
            tracing::warn!(error = %e, "could not release this replica's leases");
        }
        left
    }
}
