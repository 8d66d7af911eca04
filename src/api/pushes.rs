//! Pushes from OEMs and aggregators: `POST /v1/oem-webhooks/{oem}` is where an OEM
//! delivers its webhooks (Smartcar's `VERIFY` and `VEHICLE_STATE`). No caller token: the
//! OEM's signature over the exact body is the credential, checked with the operator's
//! `oems.<oem>.webhook_secret`; anything else is `401`. What a push carries is merged
//! into the cars' kept states ([`crate::watch::push`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiError;
use super::contract::{Problems, Public};
use super::extract::{Path, RawBody};
use crate::registry::Registry;
use crate::watch::Watches;
use crate::watch::push::{PushRefused, Taken};

/// keyway's answer to a push.
#[derive(Debug, Default, Serialize, ToSchema)]
#[schema(as = PushAnswer)]
pub struct PushAnswer {
    /// The answer to the OEM's check of the callback (Smartcar `VERIFY`: the challenge's
    /// HMAC under the shared secret); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
    /// How many cars the push carried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<usize>,
    /// How many of them keyway has (their states were merged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known: Option<usize>,
}

/// Takes a push (an inbound webhook) from an OEM or aggregator, verified by its
/// signature.
#[utoipa::path(
    post,
    path = "/v1/oem-webhooks/{oem}",
    tag = "oem-webhooks",
    operation_id = "receiveOemPush",
    params(("oem" = String, Path, description = "The OEM that pushes (`smartcar`)")),
    request_body(content = Object, content_type = "application/json",
        description = "The OEM's webhook, exactly as it sends it (signed: Smartcar's `SC-Signature`)"),
    responses(
        (status = 200, description = "Taken (for a check of the callback: its answer)", body = PushAnswer),
        Problems<(Public, PushRefused)>
    ),
    security(())
)]
pub async fn receive(
    State(registry): State<Arc<Registry>>,
    State(watches): State<Arc<Watches>>,
    Path(oem): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<serde_json::Value>, ApiError> {
    let taken = watches
        .push(&oem, registry.get(&oem), &headers, &body)
        .await?;
    let answer = match taken {
        // The OEM's own shape of the answer (Smartcar: `{"challenge": …}`).
        Taken::Challenge(answer) => return Ok(Json(answer)),
        Taken::States { received, known } => PushAnswer {
            received: Some(received),
            known: Some(known),
            ..PushAnswer::default()
        },
        Taken::Ignored => PushAnswer {
            received: Some(0),
            known: Some(0),
            ..PushAnswer::default()
        },
    };
    Ok(Json(serde_json::to_value(answer).unwrap_or_default()))
}
