//! The assembled gateway: configuration, store, OEM registry, token manager, fleet and
//! command runner, built once from a [`Config`] and shared (in an `Arc`) by the HTTP
//! API, the CLI and tests. Start-up opens the store and builds the adapters; serving
//! (`server::serve`) resumes commands a previous process left pending.

use std::sync::Arc;
use std::time::Duration;

use crate::accounts::Accounts;
use crate::audit::Audit;
use crate::auth::Verifier;
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::cluster::limits::SharedLimits;
use crate::commands::{CommandTiming, Commands};
use crate::config::{Config, ConfigError, StoreUrl};
use crate::crypto::Sealer;
use crate::events::Events;
use crate::events::webhooks::{DeliverySettings, Webhooks};
use crate::grants::{GrantSettings, Grants};
use crate::registry::Registry;
use crate::store::{SqlStore, Store, StoreError};
use crate::tokens::Tokens;
use crate::vehicles::{Fleet, WakePolicy};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Everything a request needs.
pub struct Gateway {
    /// The configuration it was built from.
    pub config: Config,
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Enabled OEMs.
    pub registry: Arc<Registry>,
    /// OEM tokens.
    pub tokens: Arc<Tokens>,
    /// Vehicle reads.
    pub fleet: Arc<Fleet>,
    /// OEM account linking.
    pub accounts: Arc<Accounts>,
    /// Command lifecycle.
    pub commands: Arc<Commands>,
    /// Caller token verification.
    pub verifier: Verifier,
    /// Seals secrets at rest.
    pub sealer: Arc<Sealer>,
    /// This replica's place in a cluster (a lone process is a cluster of one).
    pub cluster: Arc<Cluster>,
    /// Events (SSE source, webhook queue).
    pub events: Arc<Events>,
    /// Webhook subscriptions and delivery.
    pub webhooks: Arc<Webhooks>,
    /// The audit log.
    pub audit: Arc<Audit>,
    /// Delivery grants.
    pub grants: Arc<Grants>,
    /// Watched cars and their change events.
    pub watches: Arc<crate::watch::Watches>,
    /// The one clock every service reads and sleeps by.
    pub clock: Clock,
}

/// Opens (and migrates) the configured store, stamping by `clock`.
pub async fn open_store(config: &Config, clock: &Clock) -> Result<Arc<dyn Store>, StartError> {
    let store = match config.store_url()? {
        StoreUrl::Sqlite(path) => SqlStore::open(&path).await?,
        StoreUrl::Postgres(url) => {
            let c = &config.cluster;
            let idle_in_tx = c.idle_in_transaction;
            SqlStore::postgres(url.expose(), c.pool_size, idle_in_tx).await?
        }
    };
    Ok(Arc::new(store.with_clock(clock.clone())))
}

impl Gateway {
    /// Builds the gateway, on the wall clock.
    pub async fn start(config: Config) -> Result<Arc<Self>, StartError> {
        config.validate()?;
        let clock = Clock::wall();
        let store = open_store(&config, &clock).await?;
        Self::with_adapters(config, store, &[], clock).await
    }

    /// Builds everything [`Gateway::start`] builds — keys, verifier, adapters, limits,
    /// egress rules — on a throw-away in-memory store, without opening the configured
    /// store or connecting anywhere (`keyway check-config`): what `serve` would refuse,
    /// this refuses.
    pub async fn check(config: Config) -> Result<(), StartError> {
        config.validate()?;
        config.store_url()?;
        let store = Arc::new(crate::store::SqlStore::memory().await?);
        Self::with_store(config, store).await.map(|_| ())
    }

    /// Builds the gateway on an already opened store, on the wall clock.
    pub async fn with_store(
        config: Config,
        store: Arc<dyn Store>,
    ) -> Result<Arc<Self>, StartError> {
        Self::with_adapters(config, store, &[], Clock::wall()).await
    }

    /// Builds the gateway on an already opened store (stamping with the same `clock`),
    /// with `adapters` in place of the built-in ones for their OEMs and every service
    /// on `clock` (the command simulation's in-process OEMs and tokio-driven clock).
    pub async fn with_adapters(
        config: Config,
        store: Arc<dyn Store>,
        adapters: &[Arc<dyn keyway_adapter::Adapter>],
        clock: Clock,
    ) -> Result<Arc<Self>, StartError> {
        let verifier = Verifier::from_config(&config.auth)?;
        let sealer = Arc::new(Sealer::from_config(&config.crypto)?);
        let cc = &config.cluster;
        let limits = cc
            .redis
            .as_ref()
            .map(|url| {
                let timeout = cc.redis_timeout;
                let ca = cc.redis_ca_file.as_deref();
                SharedLimits::new(url.expose(), ca, &cc.prefix, timeout).map(Arc::new)
            })
            .transpose()
            .map_err(|e| ConfigError::Invalid {
                field: "cluster.redis".into(),
                message: e.to_string(),
            })?;
        let cluster = Arc::new(Cluster {
            clock: clock.clone(),
            replica: crate::ids::new("rep"),
            lease: cc.lease,
            sweep: cc.sweep,
            shared: store.shared(),
            limits: limits.clone(),
        });
        let shared = limits.clone().map(|limits| crate::upstream::Shared {
            limits,
            replicas: cc.replicas,
        });
        let registry = Arc::new(Registry::with_adapters(
            &config.oems,
            shared.as_ref(),
            adapters,
            &clock,
        )?);
        let events = Arc::new(Events::new(store.clone(), clock.clone()));
        let audit = Arc::new(Audit::new(store.clone(), clock.clone()));
        let c = &config.commands;
        let tokens = Arc::new(Tokens::new(
            store.clone(),
            registry.clone(),
            sealer.clone(),
            c.token_refresh_skew,
            cluster.clone(),
            events.clone(),
            clock.clone(),
        ));
        let fleet = Arc::new(Fleet::new(
            store.clone(),
            registry.clone(),
            tokens.clone(),
            WakePolicy {
                timeout: c.wake_timeout,
                poll: c.wake_poll,
                read_poll: c.max_poll_interval,
            },
            config.routes.clone(),
            clock.clone(),
        ));
        let accounts = Arc::new(Accounts::new(
            &config.public_url(),
            registry.clone(),
            store.clone(),
            sealer.clone(),
            tokens.clone(),
            fleet.clone(),
            clock.clone(),
        ));
        let commands = Commands::new(
            store.clone(),
            fleet.clone(),
            registry.clone(),
            CommandTiming {
                timeout: c.command_timeout,
                max_poll_interval: c.max_poll_interval,
                max_queued: c.max_queued_per_vehicle.max(1),
            },
            cluster.clone(),
            events.clone(),
            clock.clone(),
        );
        let e = &config.events;
        let webhooks = Arc::new(Webhooks::new(
            store.clone(),
            events.clone(),
            sealer.clone(),
            Arc::new(
                crate::events::egress::Egress::new(&e.webhook_allow, config.listen).map_err(
                    |m| ConfigError::Invalid {
                        field: "events.webhook_allow".into(),
                        message: m,
                    },
                )?,
            ),
            DeliverySettings {
                timeout: e.webhook_timeout,
                max_attempts: e.webhook_max_attempts,
                backoff: e.webhook_backoff,
                tick: e.delivery_tick,
            },
        ));
        let g = &config.grants;
        let grants = Arc::new(Grants::new(
            store.clone(),
            fleet.clone(),
            commands.clone(),
            events.clone(),
            audit.clone(),
            clock.clone(),
            cluster.clone(),
            GrantSettings {
                tick: g.tick,
                relock_max_attempts: g.relock_max_attempts,
                relock_backoff: g.relock_backoff,
                relock_wait: c.command_timeout,
                confirm_poll: c
                    .max_poll_interval
                    .clamp(Duration::from_millis(50), Duration::from_secs(5)),
                max_window: g.max_window,
            },
        ));
        let watches = Arc::new(crate::watch::Watches::new(
            store.clone(),
            fleet.clone(),
            events.clone(),
            cluster.clone(),
            grants.clone(),
            config.watch.clone(),
            clock.clone(),
        ));
        Ok(Arc::new(Self {
            watches,
            cluster,
            events,
            webhooks,
            audit,
            grants,
            config,
            store,
            registry,
            tokens,
            fleet,
            accounts,
            commands,
            verifier,
            sealer,
            clock,
        }))
    }
}
