//! The unified HTTP API (v1): routes, one JSON shape, problem+json errors. [`app`]
//! builds the whole router so tests can serve it on an ephemeral port.
//!
//! - [`error`]: [`ApiError`], the handlers' error: any service error becomes one here.
//! - [`problem`]: error rendering and the request-context middleware.
//! - [`substates`]: what handlers are given — each the services it uses, never the
//!   gateway.
//! - [`extract`]: caller auth, JSON bodies, `Prefer`, `Idempotency-Key`.
//! - [`limits`]: keyway's own limits on callers, load shedding, request timeout.
//! - [`object`]: JSON answers of the hot read paths, written field by field.
//! - [`vehicles`]: vehicle list, detail (with its routes), location, security.
//! - [`state`]: everything known of a car in one answer.
//! - [`commands`]: lock, unlock, command status.
//! - [`accounts`]: OEM account linking (OAuth), listing, unlinking.
//! - [`grants`]: delivery grants: create, list, revoke, unlock, complete.
//! - [`events`]: the event stream (SSE) and webhook subscriptions.
//! - [`watches`]: watching a car (its changes become events), the tenant's watches.
//! - [`pushes`]: OEMs' and aggregators' webhooks to keyway, verified by signature.
//! - [`ops`]: health, readiness, metrics, the OpenAPI document.
//! - [`contract`]: the OpenAPI document, generated from the handlers and their types.

pub mod accounts;
pub mod commands;
pub mod contract;
pub mod error;
pub mod events;
pub mod extract;
pub mod grants;
pub mod limits;
pub mod object;
pub mod ops;
pub mod problem;
pub mod pushes;
pub mod state;
pub mod substates;
pub mod vehicles;
pub mod watches;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post, put};

pub use error::ApiError;

use crate::error::Code;
use crate::gateway::Gateway;

/// The whole API, with its own inbound limiters (build it once per gateway: the
/// limits are per router).
pub fn app(gateway: Arc<Gateway>) -> Router {
    let max_body = gateway.config.http.max_body_bytes;
    let inbound = Arc::new(limits::Inbound::new(
        &gateway.config.inbound,
        gateway
            .config
            .http
            .body_timeout
            .max(std::time::Duration::from_millis(1)),
        gateway.cluster.limits.clone(),
    ));
    Router::new()
        .route("/v1/vehicles", get(vehicles::list))
        .route("/v1/vehicles/{id}", get(vehicles::one))
        .route("/v1/vehicles/{id}/location", get(vehicles::location))
        .route("/v1/vehicles/{id}/security", get(vehicles::security))
        .route("/v1/vehicles/{id}/state", get(state::state))
        .route(
            "/v1/vehicles/{id}/watch",
            put(watches::put).delete(watches::end),
        )
        .route("/v1/watches", get(watches::list))
        .route("/v1/vehicles/{id}/lock", post(commands::lock))
        .route("/v1/vehicles/{id}/unlock", post(commands::unlock))
        .route("/v1/commands/{id}", get(commands::get))
        .route("/v1/commands/{id}/acknowledge", post(commands::acknowledge))
        .route("/v1/accounts", get(accounts::list))
        .route("/v1/accounts/{id}", delete(accounts::unlink))
        .route("/v1/accounts/{id}/pin", put(accounts::set_pin))
        .route("/v1/accounts/{oem}/authorize", post(accounts::authorize))
        .route(
            "/v1/oauth/callback",
            get(accounts::callback).post(accounts::app_callback),
        )
        .route("/v1/oauth/device", post(accounts::device_poll))
        .route("/v1/grants", post(grants::create).get(grants::list))
        .route("/v1/grants/{id}", get(grants::one))
        .route("/v1/grants/{id}/timeline", get(grants::timeline))
        .route("/v1/grants/{id}/revoke", post(grants::revoke))
        .route("/v1/grants/{id}/unlock", post(grants::unlock))
        .route("/v1/grants/{id}/complete", post(grants::complete))
        .route("/v1/events", get(events::stream))
        .route("/v1/webhooks", post(events::subscribe).get(events::list))
        .route("/v1/webhooks/{id}", delete(events::unsubscribe))
        .route("/v1/webhooks/{id}/deliveries", get(events::deliveries))
        .route("/v1/oem-webhooks/{oem}", post(pushes::receive))
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
        .with_state(substates::ApiState(gateway))
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
    problem::request_context(req, |req| {
        limits::protect(around.inbound, around.max_body, req, next)
    })
    .await
}

pub use crate::clock::timestamp;
