//! Request parsing for the unified API, failing only with [`ApiError`]s: the caller's
//! JWT, optional JSON bodies (malformed, non-JSON or oversized bodies get precise
//! problems), `Prefer: wait=N` (RFC 7240) and `Idempotency-Key` (IETF draft: a
//! structured-field string; a bare token is accepted too).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Request};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::ApiError;
use super::substates::ApiState;
use crate::auth::Caller;
use crate::error::Code;

/// The authenticated caller (shared with the verified-token cache).
#[derive(Debug)]
pub struct Authed(pub Arc<Caller>);

impl FromRequestParts<ApiState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &ApiState) -> Result<Self, ApiError> {
        if parts.headers.get_all(header::AUTHORIZATION).iter().count() > 1 {
            return Err(ApiError::invalid(
                "send one Authorization header, not several",
            ));
        }
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::new(Code::Unauthenticated, "send Authorization: Bearer <token>")
            })?
            .to_str()
            .map_err(|_| {
                ApiError::new(
                    Code::Unauthenticated,
                    "the Authorization header is not text",
                )
            })?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(ApiError::new(
                    Code::Unauthenticated,
                    "the Authorization header must use the Bearer scheme",
                ));
            }
        };
        let caller = api.verifier().verify(token)?;
        // `limits::protect` hands every request the inbound limiters.
        let inbound = parts
            .extensions
            .get::<Arc<super::limits::Inbound>>()
            .ok_or_else(|| ApiError::internal("the inbound limits are not installed"))?;
        inbound.check_caller(&caller.sub).await?;
        // The in-flight place, from the caller's tenant's share, now that it is known.
        if let Some(seat) = parts.extensions.get::<Arc<super::limits::Seat>>() {
            inbound.admit(&caller.tenant, seat)?;
        }
        Ok(Authed(caller))
    }
}

/// A JSON body that may be absent (an empty body is `None`).
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let essence = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                essence == "application/json" || essence.ends_with("+json")
            });
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if json_type == Some(false) {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                "send the body as Content-Type: application/json",
            ));
        }
        // `null` is no body, as an empty one is.
        serde_json::from_slice::<Option<T>>(&bytes)
            .map(OptionalJson)
            .map_err(|e| ApiError::invalid(format!("the JSON body is not valid: {e}")))
    }
}

/// The body as it came (within the body limit), for a handler that must see its exact
/// bytes (a signature over them).
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(Code::PayloadTooLarge, "the request body is too large")
                } else {
                    ApiError::invalid(format!("the request body could not be read: {rejection}"))
                }
            })
    }
}

/// The `wait` preference, in seconds, from `Prefer` headers (RFC 7240).
pub fn prefer_wait(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|pref| {
            let (name, value) = pref.split(';').next()?.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("wait") {
                return None;
            }
            let secs: u64 = value.trim().trim_matches('"').parse().ok()?;
            Some(Duration::from_secs(secs))
        })
        .next()
}

/// The freshness a caller asks for, as an extractor (reading the one header, not
/// copying all of them): see [`max_age`].
#[derive(Debug)]
pub struct MaxAge(pub Option<Duration>);

impl<S: Send + Sync> FromRequestParts<S> for MaxAge {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(MaxAge(max_age(&parts.headers)))
    }
}

/// The freshness a caller asks for: `Cache-Control: max-age=N` (0 or `no-cache`
/// forces a fresh read from the car).
pub fn max_age(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|d| {
            let d = d.trim();
            if d.eq_ignore_ascii_case("no-cache") {
                return Some(Duration::ZERO);
            }
            let (name, value) = d.split_once('=')?;
            name.trim().eq_ignore_ascii_case("max-age").then(|| {
                value
                    .trim()
                    .trim_matches('"')
                    .parse()
                    .ok()
                    .map(Duration::from_secs)
            })?
        })
        .min()
}

/// The `Idempotency-Key`, validated: 1–255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(raw) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::invalid("send exactly one Idempotency-Key header"));
    }
    let raw = raw
        .to_str()
        .map_err(|_| ApiError::invalid("the Idempotency-Key must be ASCII"))?
        .trim();
    if !IDEMPOTENCY_KEY.is_match(raw) {
        return Err(ApiError::invalid(
            "the Idempotency-Key must be 1 to 255 visible ASCII characters without '\"' \
             (or such a key in quotes)",
        ));
    }
    let key = raw
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .unwrap_or(raw);
    Ok(Some(key.to_string()))
}

/// [`super::contract::IDEMPOTENCY_KEY_PATTERN`], the keys the API document states.
static IDEMPOTENCY_KEY: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(super::contract::IDEMPOTENCY_KEY_PATTERN)
        .unwrap_or_else(|_| regex::Regex::new("$^").unwrap())
});

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn prefer_wait_forms() {
        assert_eq!(
            prefer_wait(&headers(&[("prefer", "wait=10")])),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            prefer_wait(&headers(&[("prefer", "respond-async, wait=5")])),
            Some(Duration::from_secs(5))
        );
        assert_eq!(prefer_wait(&headers(&[("prefer", "return=minimal")])), None);
        assert_eq!(prefer_wait(&headers(&[("prefer", "wait=soon")])), None);
        assert_eq!(prefer_wait(&headers(&[])), None);
    }

    #[test]
    fn cache_control_forms() {
        assert_eq!(
            max_age(&headers(&[("cache-control", "max-age=5")])),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            max_age(&headers(&[("cache-control", "no-cache")])),
            Some(Duration::ZERO)
        );
        assert_eq!(
            max_age(&headers(&[("cache-control", "max-age=60, no-cache")])),
            Some(Duration::ZERO)
        );
        assert_eq!(max_age(&headers(&[("cache-control", "max-age=x")])), None);
        assert_eq!(max_age(&headers(&[])), None);
    }

    #[test]
    fn idempotency_key_forms() {
        assert_eq!(
            idempotency_key(&headers(&[("idempotency-key", "\"abc-1\"")])).unwrap(),
            Some("abc-1".into())
        );
        assert_eq!(
            idempotency_key(&headers(&[("idempotency-key", "abc-1")])).unwrap(),
            Some("abc-1".into())
        );
        assert!(idempotency_key(&headers(&[("idempotency-key", "\"\"")])).is_err());
        assert!(
            idempotency_key(&headers(&[
                ("idempotency-key", "a"),
                ("idempotency-key", "b")
            ]))
            .is_err()
        );
        assert_eq!(idempotency_key(&headers(&[])).unwrap(), None);
    }
}

/// Path parameters; a rejection is a problem+json `invalid_request`, like every other.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| ApiError::invalid(format!("bad path: {}", e.body_text())))
    }
}

/// A query string; a rejection is a problem+json `invalid_request`, like every other.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| ApiError::invalid(format!("bad query: {}", e.body_text())))
    }
}
