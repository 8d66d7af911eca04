//! The OEM registry: the one place that knows which adapters exist. Adding an OEM is
//! its crate, which exports one `OEM` (what it declares, how it is built, and for an
//! OEM that signs commands how its key is read: `keyway_adapter::oem::Oem`) and, behind
//! its `mock` feature, one `MOCK` (how its mock is built for the demo and `keyway
//! mock`), plus one line in the table of OEMs ([`ADAPTERS`], [`MOCKS`]). Each enabled OEM gets
//! its adapter, its outbound stack and its configuration, found by OEM id. It refuses
//! what only an OEM's adapter can judge: unknown OEM ids, a missing application key,
//! signing keys for an OEM that does not sign, a signing key that does not read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use keyway_adapter::{Adapter, AdapterInfo, Http, Secret};

use crate::upstream::breaker::Breaker;
use crate::upstream::quota::Quota;

use crate::config::{ConfigError, OemConfig, invalid};
use crate::upstream;

pub use keyway_adapter::oem::{Build, Signing};

/// One adapter keyway has, as its crate describes it.
pub type Known = keyway_adapter::oem::Oem;

/// keyway's table of OEMs: one line per OEM — an adapter crate, or the module of one
/// that serves a second brand on the same backend (`keyway_vw::audi`) — which exports
/// its `OEM` and, behind its `mock` feature, its `MOCK` (`keyway_adapter::mock::Mock`).
macro_rules! oems {
    ($($($krate:ident)::+),* $(,)?) => {
        /// Every adapter keyway has.
        pub static ADAPTERS: &[&Known] = &[$(&$($krate)::+::OEM),*];
        /// Every mock OEM, in [`ADAPTERS`]'s order.
        #[cfg(feature = "mock")]
        pub static MOCKS: &[&keyway_adapter::mock::Mock] = &[$(&$($krate)::+::MOCK),*];
    };
}

oems!(
    keyway_tesla,
    keyway_bmw,
    keyway_volvo,
    keyway_gm,
    keyway_ford,
    keyway_hyundai,
    keyway_smartcar,
    keyway_vw,
    keyway_vw::audi,
    keyway_skoda,
);

/// The adapter keyway has for `oem`.
pub fn known_adapter(oem: &str) -> Option<&'static Known> {
    ADAPTERS.iter().copied().find(|k| k.info.oem == oem)
}

/// What the adapter for `oem` declares, if keyway has one.
pub fn info(oem: &str) -> Option<&'static AdapterInfo> {
    known_adapter(oem).map(|k| k.info)
}

/// The ids of every OEM keyway has an adapter for.
pub fn known() -> Vec<&'static str> {
    ADAPTERS.iter().map(|k| k.info.oem).collect()
}

fn build(oem: &str, c: &OemConfig) -> Option<Arc<dyn Adapter>> {
    let known = known_adapter(oem)?;
    // The configuration was validated: a signing key, where given, reads.
    let signing_key = known
        .signing
        .as_ref()
        .and_then(|_| c.app_key_pem().ok().flatten());
    Some((known.build)(&Build {
        base: &c.api_base_url,
        vehicles_base: c.vehicles_base(),
        api_version: c.api_version.as_deref(),
        auth_base: c.auth_base(),
        client_id: &c.client_id,
        client_secret: c.client_secret.clone(),
        api_key: c.api_key.clone().unwrap_or_default(),
        signing_key,
        domain: c.app_domain.clone(),
    }))
}

/// The public key to serve at the signing OEM's well-known path, when its `app_domain`
/// and a key are configured.
pub fn tesla_public_key(oems: &BTreeMap<String, OemConfig>) -> Option<String> {
    oems.iter().find_map(|(name, c)| {
        let signing = known_adapter(name)?.signing.as_ref()?;
        c.app_domain.as_ref()?;
        let pem = c.app_key_pem().ok().flatten()?;
        (signing.public_pem)(pem.expose())
    })
}

/// The adapter for `oem` talking to `base_url` (`keyway replay`: an API that answers
/// whatever was captured; the mocks' own checks), without a signing key.
pub fn adapter_for(oem: &str, base_url: &str, api_key: &str) -> Option<Arc<dyn Adapter>> {
    known_adapter(oem).map(|k| k.unsigned(base_url, api_key))
}

/// Checks `[oems.<name>]` against what the adapter for `name` declares.
pub fn check(name: &str, oem: &OemConfig) -> Result<&'static AdapterInfo, ConfigError> {
    let Some(info) = info(name) else {
        return Err(invalid(
            &format!("oems.{name}"),
            format!("unknown OEM; known: {}", known().join(", ")),
        ));
    };
    if let Some(header) = info.api_key_header
        && oem
            .api_key
            .as_ref()
            .is_none_or(keyway_adapter::Secret::is_empty)
    {
        return Err(invalid(
            &format!("oems.{name}.api_key"),
            format!(
                "{} calls need an application key ({header}); set it or KEYWAY_OEMS_{}_API_KEY",
                info.make,
                name.to_ascii_uppercase()
            ),
        ));
    }
    if let Some(version) = &oem.api_version {
        let versions = known_adapter(name).map_or(&[][..], |k| k.versions);
        if !versions.contains(&version.as_str()) {
            let offered = match versions {
                [] => format!("{} offers one API version here", info.make),
                v => format!("{} offers {}", info.make, v.join(", ")),
            };
            return Err(invalid(
                &format!("oems.{name}.api_version"),
                format!("unknown API version {version:?}: {offered}"),
            ));
        }
    }
    let signs = oem.app_key.is_some() || oem.app_key_file.is_some() || oem.app_domain.is_some();
    let signing = known_adapter(name).and_then(|k| k.signing.as_ref());
    if signs && signing.is_none() {
        let signers: Vec<&str> = ADAPTERS
            .iter()
            .filter(|k| k.signing.is_some())
            .map(|k| k.info.make)
            .collect();
        return Err(invalid(
            &format!("oems.{name}.app_key"),
            format!(
                "application keys and domains are for signed commands only ({})",
                signers.join(", ")
            ),
        ));
    }
    if let Some(pem) = oem.app_key_pem()?
        && signing.is_some_and(|s| !(s.reads)(pem.expose()))
    {
        return Err(invalid(
            &format!("oems.{name}.app_key"),
            "not a P-256 private key in PEM (make one with `keyway tesla-keygen`)",
        ));
    }
    Ok(info)
}

/// One enabled OEM.
pub struct Oem {
    /// Its adapter.
    pub adapter: Arc<dyn Adapter>,
    /// Its outbound stack.
    pub http: Http,
    /// The outbound stack to its OAuth server (its own breaker).
    pub auth_http: Http,
    /// The outbound stack of the reads that watch command outcomes (no breaker).
    pub watch_http: Http,
    /// Its request quota (and the pushback gate after "too many requests").
    pub requests: Arc<Quota>,
    /// Its command quota.
    pub commands: Arc<Quota>,
    /// Its circuit breaker.
    pub breaker: Arc<Breaker>,
    /// Its clock as its answers tell it.
    pub clock: Arc<upstream::clock::OemClock>,
    /// What it billed, where the OEM bills (this gateway's count).
    pub bill: Option<Arc<upstream::Bill>>,
    /// How its cloud lags its cars (declared, with the configured overrides).
    pub timing: keyway_adapter::OemTiming,
    /// Its settings.
    pub config: OemConfig,
}

/// Every enabled OEM.
#[derive(Default)]
pub struct Registry {
    /// By OEM name (keyway's own names: a fast hash is safe here).
    oems: HashMap<String, Oem, ahash::RandomState>,
    /// The Tesla application key's public half, derived once at start (it is served to
    /// anyone, unauthenticated: reading and parsing the key file per request cost 12×
    /// a health check, on the event loop).
    public_key: Option<Arc<str>>,
}

impl Registry {
    /// Builds adapters and stacks for the configured OEMs, refusing what [`check`]
    /// refuses.
    pub fn from_config(
        oems: &BTreeMap<String, OemConfig>,
        shared: Option<&upstream::Shared>,
    ) -> Result<Self, ConfigError> {
        Self::with_adapters(oems, shared, &[], &crate::clock::Clock::wall())
    }

    /// Like [`Registry::from_config`], with `supplied` adapters in place of the built-in
    /// ones for their OEM ids (an embedder's own, e.g. the command simulation's), each
    /// OEM's clock measured against `clock`.
    pub fn with_adapters(
        oems: &BTreeMap<String, OemConfig>,
        shared: Option<&upstream::Shared>,
        supplied: &[Arc<dyn Adapter>],
        clock: &crate::clock::Clock,
    ) -> Result<Self, ConfigError> {
        for (name, c) in oems {
            check(name, c)?;
        }
        let clients = upstream::clients();
        let public_key = tesla_public_key(oems).map(Arc::from);
        let mut built = HashMap::default();
        for (id, c) in oems {
            let adapter = match supplied.iter().find(|a| a.info().oem == id) {
                Some(a) => a.clone(),
                None => match build(id, c) {
                    Some(a) => a,
                    None => continue,
                },
            };
            let info = adapter.info();
            let app_token = info.oauth.linking.owner_param().is_some();
            if app_token && c.client_secret.as_ref().is_none_or(Secret::is_empty) {
                return Err(invalid(
                    &format!("oems.{id}.client_secret"),
                    "this API version calls with the application's own token, granted for \
                     the client secret",
                ));
            }
            let timing = c.timing.over(info.timing);
            let stack = upstream::stack(
                &clients,
                info.oem,
                c,
                &info.limits,
                shared,
                adapter.billing(),
                clock,
            );
            let oem = Oem {
                adapter,
                http: stack.http,
                auth_http: stack.auth_http,
                watch_http: stack.watch_http,
                requests: stack.requests,
                commands: stack.commands,
                breaker: stack.breaker,
                clock: stack.clock,
                bill: stack.bill,
                timing,
                config: c.clone(),
            };
            built.insert(id.clone(), oem);
        }
        Ok(Self {
            oems: built,
            public_key,
        })
    }

    /// The published Tesla public key (PEM), if keyway has an application key.
    pub fn tesla_public_key(&self) -> Option<Arc<str>> {
        self.public_key.clone()
    }

    /// An enabled OEM.
    pub fn get(&self, oem: &str) -> Option<&Oem> {
        self.oems.get(oem)
    }

    /// The longest command window plus state lag of any enabled OEM (how far back an
    /// `unknown` command may still be decided).
    pub fn longest_window(&self) -> std::time::Duration {
        self.oems
            .values()
            .map(|o| o.timing.command_window + o.timing.state_lag)
            .max()
            .unwrap_or_default()
    }

    /// Enabled OEM ids.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.oems.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oem(extra: &str) -> OemConfig {
        toml::from_str(&format!(
            "api_base_url = \"http://x\"\nclient_id = \"c\"\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn unknown_oems_and_missing_application_keys_are_refused_by_name() {
        let e = check("trabant", &oem("")).unwrap_err().to_string();
        assert!(e.contains("oems.trabant") && e.contains("tesla"), "{e}");
        let e = check("volvo", &oem("")).unwrap_err().to_string();
        assert!(e.contains("oems.volvo.api_key"), "{e}");
        assert!(check("volvo", &oem("api_key = \"k\"")).is_ok());
        let mut oems = BTreeMap::new();
        oems.insert("trabant".to_string(), oem(""));
        assert!(Registry::from_config(&oems, None).is_err());
    }

    #[test]
    fn an_api_version_is_one_the_oem_offers_and_v3_needs_the_client_secret() {
        let e = check("smartcar", &oem("api_version = \"4\"")).unwrap_err();
        assert!(e.to_string().contains("oems.smartcar.api_version"), "{e}");
        let e = check("tesla", &oem("api_version = \"3\"")).unwrap_err();
        assert!(e.to_string().contains("oems.tesla.api_version"), "{e}");
        let mut oems = BTreeMap::new();
        oems.insert("smartcar".to_string(), oem("api_version = \"3\""));
        let e = Registry::from_config(&oems, None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("oems.smartcar.client_secret"), "{e}");
        oems.insert(
            "smartcar".to_string(),
            oem("api_version = \"3\"\nclient_secret = \"s\""),
        );
        let r = Registry::from_config(&oems, None).unwrap();
        assert!(
            r.get("smartcar")
                .unwrap()
                .adapter
                .info()
                .oauth
                .linking
                .owner_param()
                .is_some()
        );
    }

    #[test]
    fn only_tesla_signs_and_its_key_must_read() {
        let pem = keyway_tesla::vcp::AppKey::generate().private_pem();
        let mut tesla = oem("");
        tesla.app_key = Some(keyway_adapter::Secret::new(pem.clone()));
        assert!(check("tesla", &tesla).is_ok());
        assert!(
            !format!("{tesla:?}").contains(&pem[40..80]),
            "the key never shows in Debug"
        );
        tesla.app_key = Some(keyway_adapter::Secret::new("not a key"));
        let e = check("tesla", &tesla).unwrap_err().to_string();
        assert!(e.contains("oems.tesla.app_key"), "{e}");
        let e = check("bmw", &oem("app_domain = \"x.example\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Tesla"), "{e}");
    }
}
