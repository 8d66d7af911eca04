//! The unified HTTP API (v1): routes, one JSON shape, problem+json errors. [`app`]
//! builds the whole router so tests can serve it on an ephemeral port.
//!
//! - [`error`]: [`ApiError`], the handlers' error: any service error becomes one here.
//! - [`problem`]: error rendering and the request-context middleware.
//! - [`extract`]: caller auth, JSON bodies, `Prefer`, `Idempotency-Key`.
//! - [`limits`]: keyway's own limits on callers, load shedding, request timeout.
//! - [`vehicles`]: vehicle list, detail, location, security.
//! - [`commands`]: lock, unlock, command status.
//! - [`accounts`]: OEM account linking (OAuth), listing, unlinking.
//! - [`grants`]: delivery grants: create, list, revoke, unlock, complete.
//! - [`events`]: the event stream (SSE) and webhook subscriptions.
//! - [`ops`]: health, readiness, the OpenAPI document.

pub mod accounts;
pub mod commands;
pub mod error;
pub mod events;
pub mod extract;
pub mod grants;
pub mod limits;
pub mod ops;
pub mod problem;
pub mod vehicles;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};

pub use error::ApiError;

use crate::error::Code;
use crate::gateway::Gateway;

/// The whole API, with its own inbound limiters (build it once per gateway: the
/// limits are per router).
pub fn app(gateway: Arc<Gateway>) -> Router {
    let max_body = gateway.config.http.max_body_bytes;
    let inbound = Arc::new(limits::Inbound::new(
        &gateway.config.inbound,
        gateway.cluster.limits.clone(),
    ));
    Router::new()
        .route("/v1/vehicles", get(vehicles::list))
        .route("/v1/vehicles/{id}", get(vehicles::one))
        .route("/v1/vehicles/{id}/location", get(vehicles::location))
        .route("/v1/vehicles/{id}/security", get(vehicles::security))
        .route("/v1/vehicles/{id}/lock", post(commands::act::<false>))
        .route("/v1/vehicles/{id}/unlock", post(commands::act::<true>))
        .route("/v1/commands/{id}", get(commands::get))
        .route("/v1/accounts", get(accounts::list))
        .route("/v1/accounts/{id}", delete(accounts::unlink))
        .route("/v1/accounts/{oem}/authorize", post(accounts::authorize))
        .route("/v1/oauth/callback", get(accounts::callback))
        .route("/v1/grants", post(grants::create).get(grants::list))
        .route("/v1/grants/{id}", get(grants::one).delete(grants::revoke))
        .route("/v1/grants/{id}/unlock", post(grants::unlock))
        .route("/v1/grants/{id}/complete", post(grants::complete))
        .route("/v1/events", get(events::stream))
        .route("/v1/webhooks", post(events::subscribe).get(events::list))
        .route("/v1/webhooks/{id}", delete(events::unsubscribe))
        .route("/v1/webhooks/{id}/deliveries", get(events::deliveries))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/openapi.json", get(ops::openapi))
        .route("/metrics", get(ops::metrics))
        .route(
            "/.well-known/appspecific/com.tesla.3p.public-key.pem",
            get(ops::tesla_public_key),
        )
        .fallback(|| async { ApiError::new(Code::NotFound, "no such resource") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                Code::MethodNotAllowed,
                "this resource does not accept that method",
            )
        })
        .layer(middleware::from_fn_with_state(
            Around { inbound, max_body },
            around,
        ))
        .with_state(gateway)
}

/// What every request's middleware needs.
#[derive(Clone)]
struct Around {
    inbound: Arc<limits::Inbound>,
    max_body: usize,
}

/// Every request's middleware as one layer (each router layer wraps every route once
/// more: a clone, boxed futures and a response mapping per request, about 1,000
/// instructions, BENCHMARKS.md): the body limit, and the request context around the
/// inbound limits.
async fn around(State(around): State<Around>, mut req: Request, next: Next) -> Response {
    DefaultBodyLimit::max(around.max_body).apply(&mut req);
    problem::request_context(req, |req| limits::protect(around.inbound, req, next)).await
}

pub use crate::clock::timestamp;

/// A JSON answer (200) for the read paths, written into one buffer sized for them:
/// axum's `Json` starts at 128 bytes and grows once for a location (about 190), which
/// cost about 500 instructions a request (BENCHMARKS.md).
pub fn json<T: serde::Serialize>(value: &T) -> Response {
    use axum::http::{HeaderValue, header};
    use axum::response::IntoResponse;
    let mut buf = Vec::with_capacity(256);
    match serde_json::to_writer(&mut buf, value) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            buf,
        )
            .into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{StatusCode, header};

    #[tokio::test]
    async fn a_json_answer_is_the_value_with_its_media_type() {
        #[derive(serde::Serialize)]
        struct View<'a> {
            vehicle_id: &'a str,
            latitude: f64,
            note: Option<&'a str>,
        }
        let view = View {
            vehicle_id: "veh_\"quoted\"",
            latitude: 52.520008,
            note: None,
        };
        let r = super::json(&view);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(
            &body[..],
            br#"{"vehicle_id":"veh_\"quoted\"","latitude":52.520008,"note":null}"#
        );
    }

    #[tokio::test]
    async fn a_value_that_cannot_be_written_is_an_internal_error_not_a_partial_answer() {
        // A map with non-text keys has no JSON form.
        let value = std::collections::BTreeMap::from([((1, 2), "x")]);
        let r = super::json(&value);
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
