//! keyway's Smartcar adapter (vehicle API v2.0, or v3 by configuration): one upstream
//! for the many makes Smartcar reaches, and a stateful mock of it.
//!
//! - [`adapter`]: translation: the paged vehicle list, each car's attributes and VIN,
//!   the lock status (`isLocked`, doors, storage) and location with `sc-data-age` as
//!   their time, lock and unlock through `POST /security`, and Smartcar's typed errors.
//! - [`answers`]: Smartcar's typed errors and make names, shared by both versions.
//! - [`compatibility`]: what each car can do, asked of Smartcar's compatibility API
//!   when the car is listed (API v2.0).
//! - [`v3`]: API v3's calls: the application's token with the owner in `sc-user-id`,
//!   the owner's connections, signals, `command-execution` answers.
//! - [`signals`]: API v3's signal documents, read wherever a v2.0 answer is expected.
//! - [`push`]: Smartcar's signed webhooks (`VERIFY`, `VEHICLE_STATE`) as pushed states.
//! - [`mock`]: a fake of those endpoints with Smartcar's OAuth profile (HTTP Basic client
//!   auth, rotating refresh tokens), its error bodies, sleeping cars (`ASLEEP`), makes
//!   that cannot take remote commands (`VEHICLE_NOT_CAPABLE`) and 429s.
//! - [`demo`]: how the mock joins keyway's demo and `keyway mock` ([`MOCK`]).

pub mod adapter;
pub mod answers;
pub mod compatibility;
#[cfg(feature = "mock")]
pub mod demo;
pub mod exchanges;
#[cfg(feature = "mock")]
pub mod mock;
pub mod push;
pub mod signals;
pub mod v3;

pub use adapter::SmartcarAdapter;
#[cfg(feature = "mock")]
pub use demo::MOCK;
#[cfg(feature = "mock")]
pub use mock::{SmartcarMock, SmartcarMockConfig};
pub use v3::AppCredentials;

/// This OEM as keyway's registry holds it: its adapter's declaration, the API versions
/// it offers (v2.0, the default, and v3) and how the adapter for the configured one is
/// built.
pub static OEM: keyway_adapter::oem::Oem = keyway_adapter::oem::Oem {
    info: &adapter::INFO,
    build,
    signing: None,
    versions: &["2.0", "3"],
};

/// The Smartcar adapter for the configured API version: v2.0 unless `"3"`.
fn build(b: &keyway_adapter::oem::Build<'_>) -> std::sync::Arc<dyn keyway_adapter::Adapter> {
    if b.api_version != Some("3") {
        let mut adapter = SmartcarAdapter::new(b.base);
        if let Some(secret) = &b.client_secret {
            adapter = adapter.with_compatibility(compatibility::Compatibility {
                client_id: b.client_id.to_string(),
                client_secret: secret.clone(),
            });
        }
        return std::sync::Arc::new(adapter);
    }
    std::sync::Arc::new(SmartcarAdapter::v3(
        b.base,
        AppCredentials {
            token_url: keyway_adapter::http::join(b.auth_base, adapter::INFO_V3.oauth.token_path),
            client_id: b.client_id.to_string(),
            client_secret: b.client_secret.clone().unwrap_or_default(),
        },
    ))
}
