//! The outbound stack every OEM call goes through: one pooled hyper client with
//! rustls (system roots; plain HTTP allowed for loopback mocks), wrapped per OEM in the
//! shared [`HyperTransport`] with that OEM's per-try timeout. Adapters see it only as
//! the boxed [`Http`] service; the policy layers (quota, breaker, retry budget) stack
//! here as they are added, never in adapters.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use keyway_adapter::Http;
use keyway_adapter::transport::HyperTransport;

use crate::config::OemConfig;

/// The shared client type.
pub type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Largest OEM answer keyway reads.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// Builds the one pooled client all OEM stacks share.
pub fn client() -> HttpsClient {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_native_roots() {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "no system CA certificates found; HTTPS to OEMs will fail");
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        }
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let connector = builder.https_or_http().enable_http1().wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build(connector)
}

/// One OEM's stack over the shared client.
pub fn stack(client: &HttpsClient, oem: &OemConfig) -> Http {
    Http::new(HyperTransport::new(
        client.clone(),
        Duration::from_millis(oem.timeout_ms),
        MAX_RESPONSE_BYTES,
    ))
}
