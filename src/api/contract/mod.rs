//! The API contract: the OpenAPI 3.1 document, generated from the handlers' own types
//! and annotations (`utoipa`), served at `GET /openapi.json` and checked in as
//! `openapi.json` at the repository's root (a test fails when the two differ; `cargo
//! run -- openapi > openapi.json` writes it again). Each route's problem answers come
//! from the error types its handler can return ([`problems`]); the headers every
//! command takes ([`IdempotencyKey`], [`PreferWait`]) are declared once here, and
//! [`links`] ties each created object's id to the operations that use it.

pub mod links;
pub mod problems;

use std::sync::LazyLock;

use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Required};
use utoipa::{IntoParams, Modify, OpenApi};

pub use problems::{Edge, JsonBody, Problems, Public};

use super::{accounts, commands, events, grants, ops, problem, pushes, state, vehicles, watches};

/// The document's sources: every route, the schemas they name, and the finishing
/// passes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "keyway unified vehicle API",
        version = "1.0.0",
        description = "Locate, lock and unlock cars of many automakers through one API. \
            Errors are RFC 9457 problem+json with a stable `code`; each operation lists \
            the codes it can answer under their HTTP status."
    ),
    paths(
        vehicles::list,
        vehicles::one,
        vehicles::location,
        vehicles::security,
        state::state,
        watches::put,
        watches::end,
        watches::list,
        commands::lock,
        commands::unlock,
        commands::get,
        commands::acknowledge,
        accounts::list,
        accounts::unlink,
        accounts::set_pin,
        accounts::authorize,
        accounts::callback,
        accounts::app_callback,
        accounts::device_poll,
        grants::create,
        grants::list,
        grants::one,
        grants::timeline,
        grants::revoke,
        grants::unlock,
        grants::complete,
        events::stream,
        events::subscribe,
        events::list,
        events::unsubscribe,
        events::deliveries,
        pushes::receive,
        ops::healthz,
        ops::readyz,
        ops::openapi,
        ops::metrics,
        ops::tesla_public_key,
    ),
    components(schemas(
        problem::ProblemDoc,
        crate::error::Code,
        crate::events::EventView,
        crate::events::Kind,
        crate::watch::Signals,
        crate::watch::StateChangeDoc,
        crate::tokens::ReauthorizationRequired,
    )),
    modifiers(&Finish),
    security(("bearer" = [])),
    tags(
        (name = "vehicles", description = "The caller's cars: list, position, lock state"),
        (name = "commands", description = "Lock and unlock, and their outcomes"),
        (name = "accounts", description = "Linking owners' OEM accounts (OAuth)"),
        (name = "grants", description = "Delivery grants: time-boxed unlocks with a guaranteed relock"),
        (name = "events", description = "The event stream and webhook subscriptions"),
        (name = "oem-webhooks", description = "Pushes from OEMs and aggregators, verified by their signatures"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
struct Sources;

/// The finishing passes: the bearer scheme and the links.
struct Finish;

impl Modify for Finish {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                utoipa::openapi::security::HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT naming the caller (`sub`), its tenant and its scopes \
                         (`vehicles:read`, `location:read`, `security:read`, \
                         `commands:lock`, `commands:unlock`, `accounts:write`, \
                         `grants:write`, `grants:use`, `events:read`, `webhooks:write`, \
                         `admin`); the scopes each operation needs are listed in its \
                         security requirement.",
                    ))
                    .build(),
            ),
        );
        links::add(doc);
        problems::share(doc);
    }
}

/// The document, built once per process (it is the same for every gateway).
pub fn document() -> &'static Document {
    static DOC: LazyLock<Document> = LazyLock::new(Sources::openapi);
    &DOC
}

/// The document as served and checked in: pretty JSON, ending in a newline.
pub fn json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let mut s = document()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        s.push('\n');
        s
    });
    &JSON
}

/// An optional header parameter: a string, matching `pattern` when one is given.
pub fn header(name: &str, description: &str, pattern: Option<&str>) -> Parameter {
    let mut schema = ObjectBuilder::new().schema_type(Type::String);
    if let Some(p) = pattern {
        schema = schema.pattern(Some(p));
    }
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// `Idempotency-Key` (IETF draft `httpapi-idempotency-key-header`): a structured-field
/// string, or the bare key; 1–255 visible ASCII characters without `"`. The same key
/// with the same request answers the same command; with another request, `422
/// idempotency_key_reused`.
pub struct IdempotencyKey;

/// The keys keyway accepts, as the server checks them (`extract::idempotency_key`).
pub const IDEMPOTENCY_KEY_PATTERN: &str = r#"^(?:[!#-~]{1,255}|"[!#-~]{1,255}")$"#;

impl IntoParams for IdempotencyKey {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![header(
            "Idempotency-Key",
            "Makes the request safe to retry: the same key with the same request \
             answers the same command (never a second send); with another request, \
             `422 idempotency_key_reused`.",
            Some(IDEMPOTENCY_KEY_PATTERN),
        )]
    }
}

/// `Prefer: wait=N` (RFC 7240): wait up to N seconds (capped by the gateway's
/// `commands.max_wait`) for the final outcome instead of answering `202` at once.
/// Preferences keyway does not know are ignored, as RFC 7240 asks.
pub struct PreferWait;

impl IntoParams for PreferWait {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![header(
            "Prefer",
            "`wait=N`: wait up to N seconds for the final outcome (RFC 7240); other \
             preferences are ignored.",
            None,
        )]
    }
}

#[cfg(test)]
mod tests;
