//! The OEM registry: the one place that knows which adapters exist. Adding an OEM is
//! its crate plus its line in [`ADAPTERS`] and in [`build`]. Each enabled OEM gets
//! its adapter, its outbound stack and its configuration, found by OEM id. It refuses
//! what only an OEM's adapter can judge: unknown OEM ids, a missing application key,
//! signing keys for an OEM that does not sign, a signing key that does not read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use keyway_adapter::{Adapter, AdapterInfo, Http};

use crate::upstream::breaker::Breaker;
use crate::upstream::quota::Quota;

use crate::config::{ConfigError, OemConfig, invalid};
use crate::upstream;

/// What every adapter keyway has declares about itself.
pub static ADAPTERS: &[&AdapterInfo] = &[
    &keyway_tesla::adapter::INFO,
    &keyway_bmw::adapter::INFO,
    &keyway_volvo::adapter::INFO,
    &keyway_gm::adapter::INFO,
    &keyway_ford::adapter::INFO,
    &keyway_hyundai::adapter::INFO,
];

/// What the adapter for `oem` declares, if keyway has one.
pub fn info(oem: &str) -> Option<&'static AdapterInfo> {
    ADAPTERS.iter().copied().find(|a| a.oem == oem)
}

/// The ids of every OEM keyway has an adapter for.
pub fn known() -> Vec<&'static str> {
    ADAPTERS.iter().map(|a| a.oem).collect()
}

fn build(oem: &str, c: &OemConfig) -> Option<Arc<dyn Adapter>> {
    if oem == "tesla" {
        return Some(Arc::new(tesla(c)));
    }
    let api_key = c.api_key.clone().unwrap_or_default();
    adapter(oem, &c.api_base_url, api_key)
}

/// The Tesla adapter, signing commands when an application key is configured (the
/// configuration was validated, so the key reads).
fn tesla(c: &OemConfig) -> keyway_tesla::TeslaAdapter {
    let adapter = keyway_tesla::TeslaAdapter::new(&c.api_base_url);
    let key = c
        .app_key_pem()
        .ok()
        .flatten()
        .and_then(|pem| keyway_tesla::vcp::AppKey::from_pem(pem.expose()).ok());
    match key {
        Some(key) => adapter.with_signing(key, c.app_domain.clone()),
        None => adapter,
    }
}

/// The Tesla public key to serve at the well-known path, when `app_domain` and a key
/// are configured.
pub fn tesla_public_key(oems: &BTreeMap<String, OemConfig>) -> Option<String> {
    let c = oems.get("tesla")?;
    c.app_domain.as_ref()?;
    let pem = c.app_key_pem().ok().flatten()?;
    keyway_tesla::vcp::AppKey::from_pem(pem.expose())
        .ok()
        .map(|k| k.public_pem())
}

/// The adapter for `oem` talking to `base_url` (`keyway replay`: an API that answers
/// whatever was captured).
pub fn adapter_for(oem: &str, base_url: &str, api_key: &str) -> Option<Arc<dyn Adapter>> {
    adapter(oem, base_url, keyway_adapter::Secret::new(api_key))
}

fn adapter(oem: &str, base_url: &str, api_key: keyway_adapter::Secret) -> Option<Arc<dyn Adapter>> {
    Some(match oem {
        "tesla" => Arc::new(keyway_tesla::TeslaAdapter::new(base_url)),
        "bmw" => Arc::new(keyway_bmw::BmwAdapter::new(base_url)),
        "volvo" => Arc::new(keyway_volvo::VolvoAdapter::new(base_url, api_key)),
        "gm" => Arc::new(keyway_gm::GmAdapter::new(base_url)),
        "ford" => Arc::new(keyway_ford::FordAdapter::new(base_url)),
        "hyundai" => Arc::new(keyway_hyundai::HyundaiAdapter::new(base_url, api_key)),
        _ => return None,
    })
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
    let signs = oem.app_key.is_some() || oem.app_key_file.is_some() || oem.app_domain.is_some();
    if signs && name != "tesla" {
        return Err(invalid(
            &format!("oems.{name}.app_key"),
            "application keys and domains are for Tesla's signed commands only",
        ));
    }
    if let Some(pem) = oem.app_key_pem()?
        && keyway_tesla::vcp::AppKey::from_pem(pem.expose()).is_err()
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
        Self::with_adapters(oems, shared, &[])
    }

    /// Like [`Registry::from_config`], with `supplied` adapters in place of the built-in
    /// ones for their OEM ids (an embedder's own, e.g. the command simulation's).
    pub fn with_adapters(
        oems: &BTreeMap<String, OemConfig>,
        shared: Option<&upstream::Shared>,
        supplied: &[Arc<dyn Adapter>],
    ) -> Result<Self, ConfigError> {
        for (name, c) in oems {
            check(name, c)?;
        }
        let clients = upstream::clients();
        let public_key = tesla_public_key(oems).map(Arc::from);
        let oems = oems
            .iter()
            .filter_map(|(id, c)| {
                let adapter = match supplied.iter().find(|a| a.info().oem == id) {
                    Some(a) => a.clone(),
                    None => build(id, c)?,
                };
                let info = adapter.info();
                let timing = c.timing.over(info.timing);
                let stack = upstream::stack(
                    &clients,
                    info.oem,
                    c,
                    &info.limits,
                    shared,
                    adapter.billing(),
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
                Some((id.clone(), oem))
            })
            .collect();
        Ok(Self { oems, public_key })
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
