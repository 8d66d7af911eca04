//! The OEM registry: the one place that knows which adapters exist. Adding an OEM is
//! its crate plus its line in [`ADAPTERS`] and in [`build`]. Each enabled OEM gets
//! its adapter, its outbound stack and its configuration, found by OEM id.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use keyway_adapter::{Adapter, AdapterInfo, Http};

use crate::upstream::breaker::Breaker;
use crate::upstream::quota::Quota;

use crate::config::OemConfig;
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

/// One enabled OEM.
pub struct Oem {
    /// Its adapter.
    pub adapter: Arc<dyn Adapter>,
    /// Its outbound stack.
    pub http: Http,
    /// The outbound stack to its OAuth server (its own breaker).
    pub auth_http: Http,
    /// Its request quota (and the pushback gate after "too many requests").
    pub requests: Arc<Quota>,
    /// Its command quota.
    pub commands: Arc<Quota>,
    /// Its circuit breaker.
    pub breaker: Arc<Breaker>,
    /// How its cloud lags its cars (declared, with the configured overrides).
    pub timing: keyway_adapter::OemTiming,
    /// Its settings.
    pub config: OemConfig,
}

/// Every enabled OEM.
#[derive(Default)]
pub struct Registry {
    oems: HashMap<String, Oem>,
}

impl Registry {
    /// Builds adapters and stacks for the configured OEMs (ids were validated).
    pub fn from_config(
        oems: &BTreeMap<String, OemConfig>,
        shared: Option<&upstream::Shared>,
    ) -> Self {
        Self::with_adapters(oems, shared, &[])
    }

    /// Like [`Registry::from_config`], with `supplied` adapters in place of the built-in
    /// ones for their OEM ids (an embedder's own, e.g. the command simulation's).
    pub fn with_adapters(
        oems: &BTreeMap<String, OemConfig>,
        shared: Option<&upstream::Shared>,
        supplied: &[Arc<dyn Adapter>],
    ) -> Self {
        let client = upstream::client();
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
                    &client,
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
                    requests: stack.requests,
                    commands: stack.commands,
                    breaker: stack.breaker,
                    timing,
                    config: c.clone(),
                };
                Some((id.clone(), oem))
            })
            .collect();
        Self { oems }
    }

    /// An enabled OEM.
    pub fn get(&self, oem: &str) -> Option<&Oem> {
        self.oems.get(oem)
    }

    /// Enabled OEM ids.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.oems.keys().map(String::as_str)
    }
}
