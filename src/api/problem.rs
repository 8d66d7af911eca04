//! RFC 9457 problem+json: the one place an [`ApiError`] becomes an HTTP answer, and the
//! request-context middleware that gives every request an id (taken from a sane
//! incoming `X-Request-Id` or made fresh), echoes it in the response, writes it into
//! every problem body, and logs one line per request.
//!
//! Handlers return `ApiError`; its `IntoResponse` sets status and headers and parks the
//! problem in a response extension; the middleware, which knows the request id and
//! path, renders the body. So problem bodies are written in exactly one place.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, header};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::error::{ApiError, status};

/// The request id, available to handlers as an extension.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// A problem waiting for the middleware to render it.
#[derive(Clone, Debug)]
struct PendingProblem(ApiError);

/// A problem answer (RFC 9457), as [`body`] writes it: what the API document names
/// `Problem`. Extension members beside these carry what a code needs (`command_id`,
/// `pairing_url`, `account_id`, `relink`, `required_scope`, …).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
#[allow(dead_code)]
pub struct ProblemDoc {
    /// `urn:keyway:problem:<code>`.
    #[serde(rename = "type")]
    #[schema(example = "urn:keyway:problem:vehicle_not_found")]
    kind: String,
    /// A short human title of the code.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What happened, for a human; never secrets.
    detail: String,
    /// The request's path.
    instance: String,
    /// The stable code.
    code: crate::error::Code,
    /// Whether the same request may succeed if sent again later.
    retryable: bool,
    /// The request's id (also in `X-Request-Id`).
    request_id: String,
    /// The OEM involved, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    oem: Option<String>,
    /// When to try again, in seconds (also `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    retry_after_s: Option<u64>,
}

/// The media type of problem answers.
pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = status(self.code).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(after) = self.retry_after {
            let secs = crate::clock::whole_secs(after);
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::try_from(value.as_str()) {
                h.insert(*name, v);
            }
        }
        if self.code == crate::error::Code::Unauthenticated {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"keyway\", error=\"invalid_token\""),
            );
        }
        resp.extensions_mut().insert(PendingProblem(self));
        resp
    }
}

/// The problem object for `e`.
pub fn body(e: &ApiError, request_id: &str, instance: &str) -> Value {
    let mut obj = Map::new();
    obj.insert(
        "type".into(),
        json!(format!("urn:keyway:problem:{}", e.code.as_str())),
    );
    obj.insert("title".into(), json!(e.code.title()));
    obj.insert("status".into(), json!(status(e.code).as_u16()));
    obj.insert("detail".into(), json!(e.detail));
    obj.insert("instance".into(), json!(instance));
    obj.insert("code".into(), json!(e.code.as_str()));
    obj.insert("retryable".into(), json!(e.code.retryable()));
    obj.insert("request_id".into(), json!(request_id));
    if let Some(oem) = &e.oem {
        obj.insert("oem".into(), json!(oem));
    }
    if let Some(after) = e.retry_after {
        obj.insert(
            "retry_after_s".into(),
            json!(crate::clock::whole_secs(after)),
        );
    }
    for (k, v) in &e.extra {
        obj.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Value::Object(obj)
}

/// The request id header, named once (a name given as text is parsed at each use).
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn incoming_id(req: &Request) -> Option<String> {
    let v = req.headers().get(X_REQUEST_ID)?.to_str().ok()?;
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| v.to_string())
}

/// The outer part of every request's middleware: request id, problem rendering, one log
/// line and the metrics of each request, around `inner` (the rest of the request).
pub async fn request_context<F>(mut req: Request, inner: impl FnOnce(Request) -> F) -> Response
where
    F: Future<Output = Response>,
{
    let started = Instant::now();
    let id = incoming_id(&req).unwrap_or_else(crate::ids::request);
    let method = req.method().clone();
    // Both shared, not copied: a `Uri` clone counts a reference to the request's bytes,
    // and a matched route is an `Arc<str>`.
    let uri = req.uri().clone();
    let path = uri.path();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let route = route.as_ref().map_or("unmatched", |m| m.as_str());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = inner(req).await;
    if let Some(PendingProblem(e)) = resp.extensions_mut().remove::<PendingProblem>() {
        let bytes = serde_json::to_vec(&body(&e, &id, path)).unwrap_or_default();
        *resp.body_mut() = axum::body::Body::from(bytes);
        resp.headers_mut().remove(header::CONTENT_LENGTH);
        if resp.status().is_server_error() {
            tracing::warn!(request_id = %id, code = e.code.as_str(), detail = %e.detail, "request failed");
        }
    }
    if let Ok(v) = HeaderValue::try_from(id.as_str()) {
        resp.headers_mut().insert(X_REQUEST_ID, v);
    }
    let secs = started.elapsed().as_secs_f64();
    crate::metrics::http(route, resp.status().as_u16(), secs);
    tracing::info!(
        request_id = %id,
        %method,
        path = %path,
        status = resp.status().as_u16(),
        ms = secs * 1e3,
        "request"
    );
    resp
}
