//! The mock's signed commands and `fleet_status`: `POST …/signed_command` carries a
//! base64 `RoutableMessage` to the car's VCSEC (which verifies it, [`VehicleDomain`]);
//! an authorized RKE action goes through the car's timeline like a REST command, and
//! the car's answer comes back base64 in `{"response": …}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use keyway_adapter::mock::timeline::DeliveryFault;
use keyway_adapter::mock::{Applied, Note, lock};
use prost::Message;
use serde::Deserialize;
use serde_json::json;

use super::{CommandProtocol, TeslaMock, tesla_error};
use crate::vcp::proto::universal_message::routable_message::Payload;
use crate::vcp::proto::vcsec::{FromVcsecMessage, GenericErrorE, NominalError, from_vcsec_message};
use crate::vcp::vehicle::VehicleDomain;
use crate::vcp::{Domain, from_base64, rke_action, to_base64};

#[derive(Deserialize)]
pub(super) struct SignedBody {
    routable_message: String,
}

fn refusal(e: GenericErrorE) -> Vec<u8> {
    FromVcsecMessage {
        sub_message: Some(from_vcsec_message::SubMessage::NominalError(NominalError {
            generic_error: e as i32,
        })),
    }
    .encode_to_vec()
}

pub(super) async fn signed_command(
    State(m): State<TeslaMock>,
    Path(vin): Path<String>,
    fault: Option<axum::Extension<DeliveryFault>>,
    headers: HeaderMap,
    body: Option<Json<SignedBody>>,
) -> Response {
    let Some(request) = body.and_then(|Json(b)| from_base64(&b.routable_message)) else {
        return tesla_error(StatusCode::BAD_REQUEST, "invalid routable_message").into_response();
    };
    // Handshakes travel the same path as commands: the journal tells them apart.
    let note = matches!(request.payload, Some(Payload::SessionInfoRequest(_)))
        .then_some(Note("handshake"));
    let mut resp = answer(&m, &vin, fault, &headers, request).await;
    if let Some(n) = note {
        resp.extensions_mut().insert(n);
    }
    resp
}

async fn answer(
    m: &TeslaMock,
    vin: &str,
    fault: Option<axum::Extension<DeliveryFault>>,
    headers: &HeaderMap,
    request: crate::vcp::RoutableMessage,
) -> Response {
    let vin = vin.to_string();
    let car = m.with_awake_car(headers, &vin, |v| {
        (v.user_present, v.protocol, v.keys.clone())
    });
    let (present, protocol, keys) = match car {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if protocol == CommandProtocol::Rest {
        return tesla_error(
            StatusCode::BAD_REQUEST,
            "vehicle does not support signed commands",
        )
        .into_response();
    }
    let fault = fault.map(|f| f.0).unwrap_or_default();
    let mut w = lock(&m.world);
    if matches!(request.payload, Some(Payload::ProtobufMessageAsBytes(_))) {
        w.signed_commands += 1;
    }
    let mut domain = w
        .vcsec
        .remove(&vin)
        .unwrap_or_else(|| VehicleDomain::new(Domain::VehicleSecurity, &vin));
    domain.set_keychain(keys.iter().filter_map(|k| hex::decode(k).ok()));
    let mut delivered = None;
    let (answer, _) = domain.handle(&request, |payload| match rke_action(payload) {
        None => refusal(GenericErrorE::GenericerrorUnknown),
        Some(_) if present => refusal(GenericErrorE::GenericerrorDisabledForUserCommand),
        Some(lock_to) => {
            delivered = Some(w.deliver(&vin, lock_to, fault));
            FromVcsecMessage::default().encode_to_vec()
        }
    });
    w.vcsec.insert(vin, domain);
    drop(w);
    match delivered {
        // On its way to the car still (late): Tesla's servers give up waiting.
        Some(false) => tesla_error(StatusCode::GATEWAY_TIMEOUT, "upstream timeout").into_response(),
        ran => {
            let mut resp = Json(json!({"response": to_base64(&answer)})).into_response();
            if ran == Some(true) {
                resp.extensions_mut().insert(Applied);
            }
            resp
        }
    }
}

#[derive(Deserialize)]
pub(super) struct FleetStatusBody {
    vins: Vec<String>,
}

/// `POST /api/1/vehicles/fleet_status`: which of the owner's cars need signed commands
/// and which have the app's key.
pub(super) async fn fleet_status(
    State(m): State<TeslaMock>,
    headers: HeaderMap,
    Json(body): Json<FleetStatusBody>,
) -> Response {
    let account = match m.authorize(&headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let mut w = lock(&m.world);
    let app_key = w.app_key.clone();
    let (mut paired, mut unpaired, mut info) = (Vec::new(), Vec::new(), serde_json::Map::new());
    for vin in body.vins {
        let Some(v) = w.car(&vin).filter(|v| v.account == account) else {
            continue;
        };
        let has_key = app_key.as_ref().is_some_and(|k| v.keys.contains(k));
        if has_key { &mut paired } else { &mut unpaired }.push(vin.clone());
        info.insert(
            vin,
            json!({
                "firmware_version": "2024.44.25.3",
                "vehicle_command_protocol_required": v.protocol == CommandProtocol::Signed,
                "discounted_device_data": false,
                "fleet_telemetry_version": "1.0.2",
                "total_number_of_keys": v.keys.len() + 2,
            }),
        );
    }
    Json(json!({"response": {"key_paired_vins": paired, "unpaired_vins": unpaired, "vehicle_info": info}}))
        .into_response()
}

impl TeslaMock {
    /// The Vehicle Command Protocol: signed commands and the fleet status.
    pub(super) fn signed_routes(&self) -> axum::Router<TeslaMock> {
        use axum::routing::post;
        axum::Router::new()
            .route("/api/1/vehicles/{vin}/signed_command", post(signed_command))
            .route("/api/1/vehicles/fleet_status", post(fleet_status))
    }
}
