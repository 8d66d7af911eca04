//! Signed lock and unlock through Fleet API's `signed_command`, and which path each car
//! takes. A car's path comes from Fleet API's `fleet_status` (a data request, asked once
//! per car and remembered): cars that need the Vehicle Command Protocol get signed
//! commands, pre-2021 Model S/X keep REST — no command is ever sent twice to find out.
//!
//! Sessions (key, epoch, counter, clock) are cached per car in memory, so a command to
//! a car with a warm session is one round trip and a cold one two (handshake, command).
//! They are not shared between replicas or kept across restarts: each process does its
//! own handshake (one extra round trip), and the car keeps one counter per key, so
//! replicas never collide on a counter the car already saw — a stale session earns a
//! sync fault, and one new handshake repairs it; a second failure is a clear error.

use std::collections::HashMap;
use std::sync::Mutex;

use keyway_adapter::http::check;
use keyway_adapter::{Call, Delivered, OemError, Sent};
use prost::Message;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::errors::classify;
use crate::vcp::proto::universal_message::MessageFaultE;
use crate::vcp::proto::vcsec::{
    FromVcsecMessage, GenericErrorE, OperationStatusE, from_vcsec_message,
};
use crate::vcp::session::handshake;
use crate::vcp::{
    AppKey, Domain, RoutableMessage, Session, VcpError, from_base64, rke_payload, to_base64,
};

/// How a car takes commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Vehicle Command Protocol (`signed_command`).
    Signed,
    /// REST `command/door_lock` (pre-2021 Model S/X).
    Rest,
}

/// What keyway knows about a car's command path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CarStatus {
    /// Signed or REST.
    pub protocol: Protocol,
    /// Whether the car knows keyway's key (signed cars; `None` until known).
    pub key_paired: Option<bool>,
}

/// The application key, the pairing link's domain, and per-car sessions and paths.
#[derive(Debug)]
pub struct Signing {
    key: Option<AppKey>,
    app_domain: Option<String>,
    sessions: Mutex<HashMap<String, Session>>,
    cars: Mutex<HashMap<String, CarStatus>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Deserialize)]
struct Envelope<T> {
    response: Option<T>,
}

#[derive(Deserialize)]
struct FleetStatus {
    #[serde(default)]
    key_paired_vins: Vec<String>,
    #[serde(default)]
    vehicle_info: HashMap<String, VehicleInfo>,
}

#[derive(Deserialize)]
struct VehicleInfo {
    vehicle_command_protocol_required: Option<bool>,
}

impl Signing {
    /// Signing with `key` (none: REST only); `app_domain` makes pairing links.
    pub fn new(key: Option<AppKey>, app_domain: Option<String>) -> Self {
        Self {
            key,
            app_domain,
            sessions: Mutex::default(),
            cars: Mutex::default(),
        }
    }

    /// The application key, if configured.
    pub fn key(&self) -> Option<&AppKey> {
        self.key.as_ref()
    }

    /// Where the owner of `vin` pairs keyway's key (`https://tesla.com/_ak/<domain>`).
    pub fn pairing_url(&self, vin: &str) -> Option<String> {
        self.app_domain
            .as_deref()
            .map(|d| format!("https://tesla.com/_ak/{d}?vin={vin}"))
    }

    /// What keyway knows about `vin`'s command path, if anything yet.
    pub fn status(&self, vin: &str) -> Option<CarStatus> {
        lock(&self.cars).get(vin).copied()
    }

    fn remember(&self, vin: &str, protocol: Protocol, key_paired: Option<bool>) {
        let mut cars = lock(&self.cars);
        let e = cars.entry(vin.to_string()).or_insert(CarStatus {
            protocol,
            key_paired: None,
        });
        e.protocol = protocol;
        if key_paired.is_some() {
            e.key_paired = key_paired;
        }
    }

    fn not_paired(&self, vin: &str, detail: &str) -> OemError {
        self.remember(vin, Protocol::Signed, Some(false));
        OemError::KeyNotPaired {
            pairing_url: self.pairing_url(vin),
            detail: detail.into(),
        }
    }

    /// The path for `vin`: remembered, or read from `fleet_status` once. Without an
    /// application key a signed car cannot be commanded ([`Signing::send`] says so).
    pub async fn path(&self, cx: &Call, base: &str, vin: &str) -> Result<Protocol, OemError> {
        if let Some(s) = self.status(vin) {
            return Ok(s.protocol);
        }
        self.fleet_status(cx, base, &[vin]).await?;
        Ok(self.status(vin).map_or(Protocol::Signed, |s| s.protocol))
    }

    /// Asks `fleet_status` which of `vins` need signed commands and which know the
    /// app's key, and remembers it (one data request for a whole fleet).
    pub async fn fleet_status(&self, cx: &Call, base: &str, vins: &[&str]) -> Result<(), OemError> {
        let url = keyway_adapter::http::join(base, "/api/1/vehicles/fleet_status");
        let resp = cx
            .post_json_idempotent(&url, &json!({ "vins": vins }))
            .await?;
        let status = match check(resp, false, classify) {
            Ok(r) => serde_json::from_slice::<Envelope<FleetStatus>>(r.body())
                .ok()
                .and_then(|e| e.response),
            // An API without fleet_status: the modern default, pairing unknown.
            Err(OemError::NotFound) => None,
            Err(e) => return Err(e),
        };
        for vin in vins {
            let (protocol, paired) = match &status {
                Some(s) => {
                    let required = s
                        .vehicle_info
                        .get(*vin)
                        .and_then(|i| i.vehicle_command_protocol_required)
                        .unwrap_or(true);
                    let protocol = if required {
                        Protocol::Signed
                    } else {
                        Protocol::Rest
                    };
                    (
                        protocol,
                        required.then(|| s.key_paired_vins.iter().any(|v| v == vin)),
                    )
                }
                None => (Protocol::Signed, None),
            };
            self.remember(vin, protocol, paired);
        }
        Ok(())
    }

    /// After a REST command was refused with "Vehicle Command Protocol required" (the
    /// car did not act): the car is signed from now on.
    pub fn learned_signed(&self, vin: &str) {
        self.remember(vin, Protocol::Signed, None);
    }

    /// One `signed_command` round trip.
    async fn exchange(
        &self,
        cx: &Call,
        url: &str,
        m: &RoutableMessage,
        command: bool,
    ) -> Result<RoutableMessage, OemError> {
        let body = json!({"routable_message": to_base64(m)});
        let resp = if command {
            cx.post_json(url, &body).await?
        } else {
            cx.post_json_idempotent(url, &body).await?
        };
        let resp = check(resp, command, classify)?;
        let delivered = if command {
            Delivered::Unknown
        } else {
            Delivered::No
        };
        serde_json::from_slice::<Envelope<String>>(resp.body())
            .ok()
            .and_then(|e| e.response)
            .and_then(|b| from_base64(&b))
            .ok_or(OemError::InvalidResponse {
                detail: "signed_command answer is not a base64 RoutableMessage".into(),
                delivered,
            })
    }

    async fn session(
        &self,
        cx: &Call,
        url: &str,
        key: &AppKey,
        vin: &str,
    ) -> Result<Session, OemError> {
        if let Some(s) = lock(&self.sessions).get(vin) {
            return Ok(s.clone());
        }
        let hs = handshake(key, Domain::VehicleSecurity);
        let answer = self.exchange(cx, url, &hs.request, false).await?;
        match Session::accept(key, vin, &hs, &answer) {
            Ok(s) => {
                self.remember(vin, Protocol::Signed, Some(true));
                lock(&self.sessions).insert(vin.to_string(), s.clone());
                Ok(s)
            }
            Err(VcpError::NotPaired) => Err(self.not_paired(vin, "the handshake says so")),
            Err(e) => Err(protocol_error(e, false)),
        }
    }

    /// Locks (`true`) or unlocks `vin` with a signed RKE action. A sync fault (the car
    /// did not act) gets one new handshake and one resend; a second one is an error.
    pub async fn send(
        &self,
        cx: &Call,
        base: &str,
        vin: &str,
        lock_to: bool,
    ) -> Result<Sent, OemError> {
        let Some(key) = self.key.as_ref() else {
            return Err(OemError::KeyNotPaired {
                pairing_url: None,
                detail: "the car needs signed commands and keyway has no Tesla application key (oems.tesla.app_key_file)".into(),
            });
        };
        let url =
            keyway_adapter::http::join(base, &format!("/api/1/vehicles/{vin}/signed_command"));
        for attempt in 0..2 {
            let mut session = self.session(cx, &url, key, vin).await?;
            let signed = session.authorize(key, rke_payload(lock_to));
            // The counter is spent whether or not the answer arrives.
            lock(&self.sessions).insert(vin.to_string(), session.clone());
            let answer = self.exchange(cx, &url, &signed.request, true).await?;
            match session.open(&signed, &answer) {
                Ok(payload) => return vcsec_result(&payload),
                Err(VcpError::OutOfSync(_)) if attempt == 0 => {
                    lock(&self.sessions).remove(vin);
                }
                Err(VcpError::NotPaired) => {
                    lock(&self.sessions).remove(vin);
                    return Err(self.not_paired(vin, "the car refused the key"));
                }
                Err(e) => return Err(protocol_error(e, true)),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }
}

/// A protocol-layer failure as an [`OemError`].
fn protocol_error(e: VcpError, command: bool) -> OemError {
    match e {
        VcpError::NotPaired => OemError::KeyNotPaired {
            pairing_url: None,
            detail: "the car does not know the key".into(),
        },
        // The subsystem did not answer: it may have acted.
        VcpError::Fault(MessageFaultE::MessagefaultErrorTimeout) => OemError::Timeout {
            delivered: if command {
                Delivered::Unknown
            } else {
                Delivered::No
            },
        },
        VcpError::Fault(MessageFaultE::MessagefaultErrorBusy) => OemError::Upstream {
            status: 503,
            detail: "the vehicle's security controller is busy".into(),
            delivered: Delivered::No,
        },
        // Refused at the protocol layer: the car did not act.
        VcpError::Fault(f) | VcpError::OutOfSync(f) => OemError::Refused {
            reason: format!(
                "the vehicle refused the signed command: {}",
                f.as_str_name()
            ),
        },
        VcpError::BadAnswer(what) => OemError::InvalidResponse {
            detail: format!("the vehicle's answer failed verification: {what}"),
            delivered: if command {
                Delivered::Unknown
            } else {
                Delivered::No
            },
        },
    }
}

/// VCSEC's application answer: empty is success, a nominal error a refusal, `WAIT` busy.
fn vcsec_result(payload: &[u8]) -> Result<Sent, OemError> {
    let m = FromVcsecMessage::decode(payload).map_err(|_| OemError::InvalidResponse {
        detail: "the vehicle's answer is not a FromVCSECMessage".into(),
        delivered: Delivered::Unknown,
    })?;
    match m.sub_message {
        None => Ok(Sent::Completed),
        Some(from_vcsec_message::SubMessage::NominalError(e)) => Err(OemError::Refused {
            reason: GenericErrorE::try_from(e.generic_error)
                .map(|g| {
                    g.as_str_name()
                        .trim_start_matches("GENERICERROR_")
                        .to_ascii_lowercase()
                })
                .unwrap_or_else(|_| "unknown".into()),
        }),
        Some(from_vcsec_message::SubMessage::CommandStatus(s)) => match s.operation_status() {
            OperationStatusE::OperationstatusOk => Ok(Sent::Completed),
            OperationStatusE::OperationstatusWait => Err(OemError::Upstream {
                status: 503,
                detail: "the vehicle's security controller is busy".into(),
                delivered: Delivered::No,
            }),
            OperationStatusE::OperationstatusError => Err(OemError::Refused {
                reason: "the vehicle reported an error".into(),
            }),
        },
    }
}

/// Whether a REST refusal is Tesla's "Vehicle Command Protocol required".
pub fn protocol_required(e: &OemError) -> bool {
    matches!(e, OemError::Forbidden { detail } if detail.contains("Vehicle Command Protocol required"))
}
