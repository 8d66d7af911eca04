//! `GET /v1/vehicles/{id}/state`: everything keyway knows of a car in one answer — its
//! lock state and doors, its position and its connectivity — each signal as its own route
//! would answer it, or `null` with the reason it could not be read this time.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::ApiError;
use super::extract::{Authed, MaxAge, Path};
use super::vehicles::{LocationAnswer, ReadProblems, SecurityAnswer};
use crate::auth::Scope;
use crate::vehicles::Fleet;
use crate::vehicles::VehicleError;

/// A signal keyway could not read this time, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct Unavailable {
    /// The problem code the signal's own route would have answered.
    pub code: crate::error::Code,
    /// What happened.
    pub detail: String,
}

/// Why each signal is null, when it could not be read.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct UnavailableSignals {
    /// The lock state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<Unavailable>,
    /// The position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Unavailable>,
}

/// Everything keyway knows of a car, signal by signal: each one as its own route would
/// answer it (its value, `recorded_at`, age and source), or `null` when it could not be
/// read this time (`unavailable` says why). A signal outside the token's scopes is left
/// out.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = VehicleState)]
pub struct StateAnswer {
    /// The vehicle.
    pub vehicle_id: String,
    /// The lock state and doors (`security:read`); null when unreadable now.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<SecurityAnswer>, nullable = true)]
    pub lock: Option<Option<SecurityAnswer>>,
    /// The position (`location:read`); null when unreadable now.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<LocationAnswer>, nullable = true)]
    pub location: Option<Option<LocationAnswer>>,
    /// Online, asleep or offline, as the last answer about the car showed (keyway
    /// learns it from reads and from its watcher, never by waking the car); null when
    /// its OEM does not tell (only OEMs whose cars sleep do) or nothing was read yet.
    pub connectivity: Option<LinkAnswer>,
    /// Why a signal is null.
    #[serde(skip_serializing_if = "is_empty")]
    pub unavailable: UnavailableSignals,
}

/// A car's connectivity and when keyway learned it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = VehicleConnectivity)]
pub struct LinkAnswer {
    /// Online, asleep or offline.
    pub state: crate::watch::Connectivity,
    /// When keyway learned it.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub seen_at: OffsetDateTime,
    /// Seconds since `seen_at`.
    pub age_s: i64,
}

impl LinkAnswer {
    fn of(l: crate::vehicles::Link, now: OffsetDateTime) -> Self {
        Self {
            state: l.connectivity.into(),
            seen_at: l.seen_at,
            age_s: (now - l.seen_at).whole_seconds().max(0),
        }
    }
}

fn is_empty(u: &UnavailableSignals) -> bool {
    u.lock.is_none() && u.location.is_none()
}

fn unavailable(e: &VehicleError) -> Unavailable {
    Unavailable {
        code: crate::error::Classify::code(e),
        detail: e.to_string(),
    }
}

/// Everything keyway knows of a car in one answer: its lock state and doors, and its
/// position, read side by side (`Cache-Control` as for each signal's own route). A
/// signal that cannot be read now (the car sleeps, the OEM limits) is `null` with the
/// reason; only when nothing could be read is the answer a problem.
#[utoipa::path(
    get,
    path = "/v1/vehicles/{id}/state",
    tag = "vehicles",
    operation_id = "getVehicleState",
    params(
        ("id" = String, Path, description = "The vehicle (`veh_…`)"),
        ("Cache-Control" = Option<String>, Header, description = "`max-age=N` accepts an answer up to N seconds old; `no-cache` asks the OEM now")
    ),
    responses((status = 200, description = "The car's signals", body = StateAnswer), ReadProblems),
    security(("bearer" = ["security:read"]), ("bearer" = ["location:read"]))
)]
pub async fn state(
    State(fleet): State<Arc<Fleet>>,
    Authed(caller): Authed,
    Path(id): Path<crate::store::VehicleId>,
    MaxAge(max_age): MaxAge,
) -> Result<Json<StateAnswer>, ApiError> {
    let (lock_ok, location_ok) = (
        caller.has(Scope::SecurityRead),
        caller.has(Scope::LocationRead),
    );
    if !lock_ok && !location_ok {
        caller.require(Scope::SecurityRead)?;
    }
    let car = fleet.find_car(&caller, &id).await?;
    let v = &car.vehicle;
    let lock = async {
        match lock_ok {
            true => Some(fleet.security_routed(&car, max_age).await),
            false => None,
        }
    };
    let location = async {
        match location_ok {
            true => Some(fleet.position_routed(&car, max_age).await),
            false => None,
        }
    };
    let (lock, location) = tokio::join!(lock, location);
    let mut why = UnavailableSignals::default();
    let mut first_error = None;
    let lock = lock.map(|r| match r {
        Ok(read) => Some(SecurityAnswer::of(
            v,
            read.value.0,
            read.value.1,
            &read.route,
        )),
        Err(e) => {
            why.lock = Some(unavailable(&e));
            first_error.get_or_insert(e);
            None
        }
    });
    let location = location.map(|r| match r {
        Ok(read) => Some(LocationAnswer::of(
            v,
            read.value.0,
            read.value.1,
            &read.route,
        )),
        Err(e) => {
            why.location = Some(unavailable(&e));
            first_error.get_or_insert(e);
            None
        }
    });
    let nothing =
        lock.as_ref().is_none_or(Option::is_none) && location.as_ref().is_none_or(Option::is_none);
    if nothing && let Some(e) = first_error {
        return Err(e.into());
    }
    Ok(Json(StateAnswer {
        vehicle_id: v.id.to_string(),
        lock,
        location,
        connectivity: fleet.link(&v.id).map(|l| LinkAnswer::of(l, fleet.now())),
        unavailable: why,
    }))
}
