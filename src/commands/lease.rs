//! Commands across replicas and restarts: resuming pending commands at start-up,
//! taking over those whose replica stopped renewing their lease (every `sweep`), and
//! the command and `car:<id>` leases a running command holds.

use std::sync::Arc;

use super::Commands;
use crate::cluster::{Cluster, Held};
use crate::store::CommandRecord;
use crate::store::StoreError;
use crate::sync::lock;

/// Takes over, every `sweep`, pending commands whose replica stopped renewing their
/// lease. Runs until the task is dropped.
pub async fn sweep(cluster: Arc<Cluster>, commands: Arc<Commands>) {
    let mut tick = tokio::time::interval(cluster.sweep);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match commands.take_over(commands.clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(commands = n, "took over commands of a replica that stopped"),
            Err(e) => tracing::warn!(error = %e, "could not look for abandoned commands"),
        }
    }
}

impl Commands {
    /// [`Commands::resume`] until the store answers: a store that refuses at start (a
    /// full disk, a failover) must not leave the commands a previous process left pending
    /// unresumed until the next restart. Tries once now; on failure, again in the
    /// background with growing pauses (up to 5 s). Returns the first try's answer.
    pub async fn resume_retrying(self: &Arc<Self>) -> Result<usize, StoreError> {
        let first = self.resume().await;
        if let Err(e) = &first {
            tracing::error!(error = %e, "could not resume pending commands; trying again");
            let this = self.clone();
            tokio::spawn(async move {
                let mut backoff = crate::clock::Backoff::new(
                    std::time::Duration::from_millis(200),
                    std::time::Duration::from_secs(5),
                );
                loop {
                    backoff.wait().await;
                    match this.resume().await {
                        Ok(n) => {
                            tracing::info!(commands = n, "resumed pending commands");
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "resuming pending commands failed"),
                    }
                }
            });
        }
        first
    }

    /// Resumes pending commands at start-up: all of them when this process owns the
    /// store, those whose lease lapsed when replicas share it.
    pub async fn resume(self: &Arc<Self>) -> Result<usize, StoreError> {
        let lapsed_before = if self.cluster.shared {
            self.clock.now()
        } else {
            self.clock.now() + time::Duration::days(365 * 100)
        };
        let resumed = self.take_over(lapsed_before).await?;
        match self.resume_watches().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(commands = n, "watching unknown outcomes again"),
            Err(e) => {
                tracing::warn!(error = %e, "could not resume the watches of unknown outcomes")
            }
        }
        Ok(resumed)
    }

    /// Takes over and runs the pending commands whose lease lapsed before
    /// `lapsed_before`; returns how many.
    pub async fn take_over(
        self: &Arc<Self>,
        lapsed_before: time::OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let claimed = self
            .store
            .claim_commands(&self.cluster.lease(), lapsed_before)
            .await?;
        let mut n = 0;
        for record in claimed {
            if lock(&self.running).contains_key(&record.id) {
                continue;
            }
            tracing::info!(command = %record.id, sent = record.sent_at.is_some(), "resuming command");
            self.start(record, None);
            n += 1;
        }
        if self.cluster.shared {
            crate::metrics::commands_taken_over(n);
        }
        Ok(n)
    }

    /// Whether this replica still holds the command's lease (renewing it). Always true
    /// when the store is not shared.
    pub(super) async fn still_ours(&self, id: &str) -> Result<bool, StoreError> {
        if !self.cluster.shared {
            return Ok(true);
        }
        self.store
            .renew_command_lease(id, &self.cluster.lease())
            .await
    }

    /// In cluster mode: keeps the command's lease renewed from now until the returned
    /// task is aborted — also while it waits its turn for the car.
    pub(super) fn renew(&self, record: &CommandRecord) -> Option<tokio::task::JoinHandle<()>> {
        if !self.cluster.shared {
            return None;
        }
        let (store, id) = (self.store.clone(), record.id.clone());
        Some(crate::cluster::renewing(
            &self.cluster,
            format!("command:{id}"),
            move |lease| {
                let (store, id) = (store.clone(), id.clone());
                async move { store.renew_command_lease(&id, &lease).await }
            },
        ))
    }

    /// In cluster mode: takes the car's lease (waiting while another replica runs a
    /// command on it), held and renewed until dropped.
    pub(super) async fn hold_car(&self, vehicle_id: &str) -> Option<Held> {
        if !self.cluster.shared {
            return None;
        }
        let car = format!("car:{vehicle_id}");
        Some(Held::take(self.store.clone(), &self.cluster, car).await)
    }
}
