//! An OEM as one value: each adapter crate exports one [`Oem`] — what its adapter
//! declares, how it is built from keyway's settings ([`Build`]), the API versions it
//! offers and, for an OEM whose commands are signed with the application's key, how
//! that key is read ([`Signing`]). keyway's registry holds a list of them and names
//! no OEM itself.

use std::sync::Arc;

use crate::{Adapter, AdapterInfo, Secret};

/// How an OEM whose commands are signed with the application's key (Tesla) reads that
/// key.
pub struct Signing {
    /// Whether a PEM is a key this OEM can sign with.
    pub reads: fn(&str) -> bool,
    /// The public half of a key (PEM), to publish where the OEM fetches it.
    pub public_pem: fn(&str) -> Option<String>,
    /// A new private key (PEM): a development key (the demo's, `keyway mock`'s).
    pub generate: fn() -> String,
}

/// What an adapter is built from: its API (and version), its application key and
/// client, and for an OEM that signs commands the configured signing key and domain.
pub struct Build<'a> {
    /// The API base URL.
    pub base: &'a str,
    /// Where the owner's vehicle list is, when not at `base` (myAudi's GraphQL host).
    pub vehicles_base: &'a str,
    /// The API version configured, for an OEM that offers several.
    pub api_version: Option<&'a str>,
    /// The OAuth server's base URL (an OEM whose calls carry the application's own
    /// token gets it there).
    pub auth_base: &'a str,
    /// The OAuth client id.
    pub client_id: &'a str,
    /// The OAuth client secret.
    pub client_secret: Option<Secret>,
    /// The application key sent with every call (empty when the OEM wants none).
    pub api_key: Secret,
    /// The signing key (PEM), when configured and the OEM signs.
    pub signing_key: Option<Secret>,
    /// The domain the OEM fetches the public key from.
    pub domain: Option<String>,
}

/// One OEM as its crate describes it: what its adapter declares, how it is built,
/// and for an OEM that signs commands how its key is read. Each adapter crate exports
/// one (`keyway_bmw::OEM`, …); keyway's registry is a list of them.
pub struct Oem {
    /// What it declares.
    pub info: &'static AdapterInfo,
    /// Builds it.
    pub build: fn(&Build<'_>) -> Arc<dyn Adapter>,
    /// Its signing, when its commands are signed with an application key.
    pub signing: Option<Signing>,
    /// The API versions `api_version` may name (none: the OEM offers one).
    pub versions: &'static [&'static str],
}

impl Oem {
    /// This adapter talking to `base_url` with `api_key`, without a signing key.
    pub fn unsigned(&self, base_url: &str, api_key: &str) -> Arc<dyn Adapter> {
        (self.build)(&Build {
            base: base_url,
            vehicles_base: base_url,
            api_version: None,
            auth_base: base_url,
            client_id: "",
            client_secret: None,
            api_key: Secret::new(api_key),
            signing_key: None,
            domain: None,
        })
    }
}
