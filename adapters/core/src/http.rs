//! The outbound HTTP handle adapters call through, and helpers for reading answers.
//!
//! keyway's core owns the real client stack (TLS, pooling, timeouts, quotas, breaker);
//! it hands each adapter call a [`Call`] holding that stack as a boxed tower service
//! plus the account's current access token. Adapters only build `http::Request`s and
//! read `http::Response`s; transport failures arrive already classified as
//! [`OemError`]s, with [`Delivered`] saying whether the request could have been applied.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use crate::{Delivered, OemError, Secret};

/// A transport failure, before any HTTP answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TransportError {
    /// No connection was made: the request was never sent.
    #[error("connect failed: {0}")]
    Connect(String),
    /// No complete answer in time; the request may have been sent.
    #[error("timed out")]
    Timeout,
    /// The connection failed after it was made; the request may have been sent.
    #[error("connection failed: {0}")]
    Io(String),
    /// Refused locally before sending (quota spent, too many in flight).
    #[error("not sent: {0}")]
    NotSent(String),
    /// Not sent: the OEM's quota is spent (or it asked keyway to back off) until then.
    #[error("not sent: the OEM quota is spent")]
    QuotaExhausted {
        /// When a request may go again.
        retry_after: Duration,
    },
    /// Not sent: the circuit breaker for this OEM is open.
    #[error("not sent: the OEM is failing and keyway paused calls to it")]
    CircuitOpen {
        /// When the breaker lets a probe through.
        retry_after: Duration,
    },
}

/// Marks a request as safe to repeat (a read, a status poll, a wake-up): the retry layer
/// may re-send it after a timeout or a server error. Requests without it are retried
/// only when they certainly never reached the OEM. GET and HEAD are always safe.
#[derive(Clone, Copy, Debug)]
pub struct Idempotent;

/// The keyway command a request carries out, sent to the OEM as
/// `X-Keyway-Command-Id` for correlation (mocks use it to prove no command is applied
/// twice).
pub const COMMAND_ID_HEADER: &str = "x-keyway-command-id";

/// Whether the retry layer may repeat `req` after an ambiguous failure.
pub fn is_idempotent<B>(req: &Request<B>) -> bool {
    matches!(*req.method(), Method::GET | Method::HEAD)
        || req.extensions().get::<Idempotent>().is_some()
}

impl From<TransportError> for OemError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Connect(detail) | TransportError::NotSent(detail) => {
                OemError::Transport {
                    detail,
                    delivered: Delivered::No,
                }
            }
            TransportError::Timeout => OemError::Timeout {
                delivered: Delivered::Unknown,
            },
            TransportError::Io(detail) => OemError::Transport {
                detail,
                delivered: Delivered::Unknown,
            },
            TransportError::QuotaExhausted { retry_after } => OemError::RateLimited {
                retry_after: Some(retry_after),
            },
            TransportError::CircuitOpen { retry_after } => OemError::CircuitOpen { retry_after },
        }
    }
}

type SendFuture = Pin<Box<dyn Future<Output = Result<Response<Bytes>, TransportError>> + Send>>;

/// The outbound HTTP stack as one cheaply cloneable handle (an `Arc`): sending does not
/// clone the stack, so a request through several layers costs no per-layer allocation.
#[derive(Clone)]
pub struct Http(Arc<dyn Fn(Request<Bytes>) -> SendFuture + Send + Sync>);

impl Http {
    /// Wraps any service with the right shape.
    pub fn new<S>(service: S) -> Self
    where
        S: tower::Service<Request<Bytes>, Response = Response<Bytes>, Error = TransportError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self(Arc::new(move |req| Box::pin(service.clone().oneshot(req))))
    }

    /// Wraps a function from request to answer (what stacked layers are made of).
    pub fn from_fn<F, Fut>(f: F) -> Self
    where
        F: Fn(Request<Bytes>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Bytes>, TransportError>> + Send + 'static,
    {
        Self(Arc::new(move |req| Box::pin(f(req))))
    }

    /// Sends one request.
    pub async fn send(&self, req: Request<Bytes>) -> Result<Response<Bytes>, TransportError> {
        (self.0)(req).await
    }
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Http")
    }
}

/// Everything an adapter needs for one OEM call on behalf of one account.
#[derive(Clone, Debug)]
pub struct Call {
    /// The outbound stack.
    pub http: Http,
    /// The account's access token at the OEM.
    pub token: Secret,
    /// The keyway command this call carries out, if any (sent as a correlation header).
    pub command_id: Option<String>,
    /// The keyway account the token belongs to: adapters may keep per-account facts by
    /// it (Tesla: the account's region).
    pub account: Option<String>,
    /// The owner's PIN, given only to a command's send and only while the OEM has not
    /// refused it ([`crate::OemError::PinRequired`] when a car needs one and this is
    /// `None`).
    pub pin: Option<Secret>,
}

impl Call {
    /// A request builder with the bearer token, `Accept: application/json` and the
    /// command id set.
    pub fn request(&self, method: Method, url: &str) -> http::request::Builder {
        let mut b = Request::builder().method(method).uri(url);
        if let Some(headers) = b.headers_mut() {
            self.set_headers(headers);
        }
        if let Some(id) = &self.command_id {
            b = b.header(COMMAND_ID_HEADER, id.as_str());
        }
        b
    }

    /// The request [`Call::request`] builds, with `body`, made without the builder:
    /// each step of `http`'s builder moves the whole request (about 800 instructions
    /// per OEM call, BENCHMARKS.md).
    fn build(&self, method: Method, url: &str, body: Bytes) -> Result<Request<Bytes>, http::Error> {
        let uri = http::Uri::try_from(url)?;
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        self.set_headers(req.headers_mut());
        if let Some(id) = &self.command_id {
            let id = HeaderValue::try_from(id.as_str())?;
            req.headers_mut().insert(COMMAND_ID_HEADER, id);
        }
        Ok(req)
    }

    /// Sets the bearer token and `Accept: application/json`.
    fn set_headers(&self, headers: &mut http::HeaderMap) {
        let bearer = HeaderValue::try_from(["Bearer ", self.token.expose()].concat())
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
        headers.insert(header::AUTHORIZATION, bearer);
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    }

    /// Sends a built request; transport failures become [`OemError`]s.
    pub async fn send(
        &self,
        req: Result<Request<Bytes>, http::Error>,
    ) -> Result<Response<Bytes>, OemError> {
        let req = req.map_err(|e| OemError::Transport {
            detail: format!("could not build the request: {e}"),
            delivered: Delivered::No,
        })?;
        Ok(self.http.send(req).await?)
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<Response<Bytes>, OemError> {
        self.send(self.build(Method::GET, url, Bytes::new())).await
    }

    /// `POST url` with a JSON body, safe to repeat (a wake-up, a status poll).
    pub async fn post_json_idempotent(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<Response<Bytes>, OemError> {
        self.post(url, body, true).await
    }

    /// `POST url` with a JSON body (not repeated after an ambiguous failure).
    pub async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<Response<Bytes>, OemError> {
        self.post(url, body, false).await
    }

    async fn post(
        &self,
        url: &str,
        body: &serde_json::Value,
        idempotent: bool,
    ) -> Result<Response<Bytes>, OemError> {
        let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        let mut req = self.build(Method::POST, url, bytes);
        if let Ok(req) = &mut req {
            let json = HeaderValue::from_static("application/json");
            req.headers_mut().insert(header::CONTENT_TYPE, json);
            if idempotent {
                req.extensions_mut().insert(Idempotent);
            }
        }
        self.send(req).await
    }
}

/// Parses a JSON body, mapping failure to [`OemError::InvalidResponse`].
///
/// `delivered` says what a garbled answer means for a command (a 200 that cannot be
/// read after a command was sent leaves its outcome unknown).
pub fn parse_json<T: DeserializeOwned>(
    resp: &Response<Bytes>,
    delivered: Delivered,
) -> Result<T, OemError> {
    parse_body(resp.body(), delivered)
}

/// Parses a JSON body held as bytes; failure is [`OemError::InvalidResponse`] with
/// `delivered` (what a garbled answer means for a command: usually `Unknown`).
///
/// The body is checked as UTF-8 once and parsed as text: parsed from bytes, serde_json
/// checks every string and key again (about 2,000 instructions of a Tesla location's
/// 10,500, BENCHMARKS.md). A body that is not UTF-8 is parsed from bytes as before, so
/// bad bytes in a field keyway ignores still do not fail the answer.
pub fn parse_body<'a, T: serde::Deserialize<'a>>(
    body: &'a [u8],
    delivered: Delivered,
) -> Result<T, OemError> {
    let parsed = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    };
    parsed.map_err(|e| OemError::InvalidResponse {
        detail: e.to_string(),
        delivered,
    })
}

/// A number some OEMs send as a JSON number, others (or the same, another day) as a
/// numeric string, and some as an object with its unit (`{"value": "12.5", "unit":
/// …}`, the value itself a number or a string).
pub fn lenient_number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Object(o) => match o.get("value")? {
            serde_json::Value::Object(_) => None,
            inner => lenient_number(inner),
        },
        _ => None,
    }
}

/// The OEM has no position for the car (`detail` says what was missing).
pub fn no_fix(detail: &str) -> OemError {
    OemError::NoFix {
        detail: detail.into(),
    }
}

/// A position that is really one: both coordinates present, in range, and not the 0,0
/// some answers carry for "no fix".
pub fn fix(latitude: Option<f64>, longitude: Option<f64>) -> Result<(f64, f64), OemError> {
    let (Some(lat), Some(lon)) = (latitude, longitude) else {
        return Err(no_fix("no coordinates"));
    };
    if lat == 0.0 && lon == 0.0 {
        return Err(no_fix("coordinates 0,0"));
    }
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(invalid("coordinates out of range"));
    }
    Ok((lat, lon))
}

/// A read answer that parsed but lacks what keyway needs.
pub fn invalid(detail: &str) -> OemError {
    OemError::InvalidResponse {
        detail: detail.into(),
        delivered: Delivered::No,
    }
}

/// Passes a 2xx answer through; anything else becomes the OEM's own classification.
pub fn check(
    resp: Response<Bytes>,
    command: bool,
    classify: fn(&Response<Bytes>, bool) -> OemError,
) -> Result<Response<Bytes>, OemError> {
    if resp.status().is_success() {
        Ok(resp)
    } else {
        Err(classify(&resp, command))
    }
}

/// The error of a non-success answer by its HTTP status alone
/// ([`OemError::from_status`]), with the wait a `429`'s `Retry-After` announces: what
/// an adapter's `classify` answers once nothing OEM-specific in the body decided.
pub fn status_error(resp: &Response<Bytes>, detail: String, command: bool) -> OemError {
    match resp.status().as_u16() {
        429 => OemError::RateLimited {
            retry_after: crate::error::parse_retry_after(
                resp.headers().get(http::header::RETRY_AFTER),
            ),
        },
        s => OemError::from_status(s, detail, command),
    }
}

/// `POST url` with a JSON `body`, carrying no token: a token endpoint's own JSON grant,
/// an app login's trade.
pub fn json_post(url: &str, body: &serde_json::Value) -> Result<Request<Bytes>, http::Error> {
    Request::builder()
        .method(Method::POST)
        .uri(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Bytes::from(body.to_string()))
}

/// The `Authorization` value of HTTP Basic (RFC 7617) for a client's id and secret,
/// marked sensitive so that it never shows in logs or `Debug`.
pub fn basic_auth(
    client_id: &str,
    secret: &str,
) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    use base64::Engine;
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"));
    let mut value = HeaderValue::try_from(format!("Basic {pair}"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// A short, printable excerpt of a body for error details (never of request bodies,
/// which may carry secrets).
pub fn body_excerpt(resp: &Response<Bytes>) -> String {
    let text = String::from_utf8_lossy(resp.body());
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s
}

/// Joins a base URL and a path without doubling or dropping the slash.
pub fn join(base: &str, path: &str) -> String {
    // Every OEM request builds its URL here: one exact allocation, no formatter
    // (`format!` cost about 1k instructions a request, BENCHMARKS.md).
    [
        base.trim_end_matches('/'),
        "/",
        path.trim_start_matches('/'),
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_every_form_an_oem_sends() {
        use serde_json::json;
        for v in [
            json!(12.5),
            json!("12.5"),
            json!(" 12.5 "),
            json!({"value": "12.5", "unit": "km"}),
            json!({"value": 12.5, "unit": 1}),
        ] {
            assert_eq!(lenient_number(&v), Some(12.5), "{v}");
        }
        for v in [
            json!(null),
            json!("n/a"),
            json!({"unit": "km"}),
            json!({"value": {"value": 1}}),
            json!([12.5]),
        ] {
            assert_eq!(lenient_number(&v), None, "{v}");
        }
    }

    #[test]
    fn join_paths() {
        assert_eq!(join("http://a/", "/b"), "http://a/b");
        assert_eq!(join("http://a", "b"), "http://a/b");
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Reading<'a> {
        name: &'a str,
        speed: Option<f64>,
    }

    #[test]
    fn bodies_parse_as_text() {
        let body = br#"{"place":"M\u00fcnchen","name":"car","speed":12.5}"#;
        let r: Reading = parse_body(body, Delivered::No).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r,
            Reading {
                name: "car",
                speed: Some(12.5)
            }
        );
        let e = parse_body::<Reading>(br#"{"name":"car","#, Delivered::No).unwrap_err();
        assert!(matches!(e, OemError::InvalidResponse { .. }), "{e:?}");
    }

    #[test]
    fn bad_bytes_in_an_ignored_field_do_not_fail_the_answer() {
        let body = b"{\"vin\":\"\xff\xfe\",\"name\":\"car\",\"speed\":1}";
        let r: Reading = parse_body(body, Delivered::No).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.name, "car");
        // In a field keyway reads, they are an invalid answer.
        let body = b"{\"name\":\"\xff\"}";
        let e = parse_body::<Reading>(body, Delivered::Unknown).unwrap_err();
        assert!(
            matches!(
                e,
                OemError::InvalidResponse {
                    delivered: Delivered::Unknown,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    fn call(command_id: Option<&str>) -> Call {
        Call {
            http: Http::from_fn(|_| async { Err(TransportError::Timeout) }),
            token: Secret::new("tok-1"),
            command_id: command_id.map(Into::into),
            account: None,
            pin: None,
        }
    }

    #[test]
    fn built_requests_are_the_builders() {
        for id in [None, Some("cmd_1")] {
            let cx = call(id);
            let url = "http://127.0.0.1:1/api/1/vehicles/5YJ/vehicle_data?endpoints=x";
            let built = cx.build(Method::GET, url, Bytes::new()).unwrap();
            let by_builder = cx.request(Method::GET, url).body(Bytes::new()).unwrap();
            assert_eq!(built.method(), by_builder.method());
            assert_eq!(built.uri(), by_builder.uri());
            assert_eq!(built.headers(), by_builder.headers());
            assert_eq!(built.headers()[header::AUTHORIZATION], "Bearer tok-1");
            assert!(built.headers()[header::AUTHORIZATION].is_sensitive());
            assert_eq!(
                built
                    .headers()
                    .get(COMMAND_ID_HEADER)
                    .map(|v| v.to_str().unwrap()),
                id
            );
        }
        let cx = call(Some("bad\nid"));
        assert!(cx.build(Method::GET, "http://a/b", Bytes::new()).is_err());
        assert!(
            cx.request(Method::GET, "http://a/b")
                .body(Bytes::new())
                .is_err()
        );
        assert!(
            call(None)
                .build(Method::GET, "http://a b/", Bytes::new())
                .is_err()
        );
    }

    #[test]
    fn transport_errors_classify_delivery() {
        let e: OemError = TransportError::Connect("refused".into()).into();
        assert_eq!(e.delivered(), Delivered::No);
        let e: OemError = TransportError::Timeout.into();
        assert_eq!(e.delivered(), Delivered::Unknown);
    }
}
