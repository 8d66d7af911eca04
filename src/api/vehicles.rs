//! Vehicle routes: list, detail, location, security and the state of all signals, each
//! checking its scope and the token's vehicle restriction before anything reaches an
//! OEM. Each answer is a type here, and the API document is generated from these types.

use std::sync::Arc;

use super::extract::Path;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use keyway_adapter::{Capability, Door};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::contract::{Edge, Problems};
use super::extract::{Authed, MaxAge};
use super::object::Object;
use crate::auth::Scope;
use crate::store::VehicleRecord;
use crate::vehicles::Fleet;
use crate::vehicles::{Source, VehicleError};

/// A vehicle the caller may reach.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Vehicle)]
pub struct VehicleView {
    /// keyway's id (`veh_…`), stable across re-discovery.
    pub id: String,
    /// The OEM (`tesla`, `bmw`, …).
    #[schema(example = "tesla")]
    pub oem: String,
    /// The make; `null` when the OEM is no longer configured.
    pub make: Option<&'static str>,
    /// The model, when the OEM says.
    pub model: Option<String>,
    /// The model year, when the OEM says.
    pub year: Option<u16>,
    /// The owner's name for the car.
    pub display_name: Option<String>,
    /// The VIN, when the OEM says.
    pub vin: Option<String>,
    /// What keyway can do with the car: what its OEM offers, less what the OEM says this
    /// car cannot (a Volkswagen without an active remote access service reads but does
    /// not lock or unlock).
    pub capabilities: Vec<Capability>,
    /// Whether keyway can read the car's lock state to settle a command whose answer
    /// was lost. `false` (GM): such a command stays `unknown` unless acknowledged.
    pub outcome_confirmable: bool,
    /// Tesla only: how keyway commands the car — `signed` (Tesla's Vehicle Command
    /// Protocol through `signed_command`) or `rest` (pre-2021 Model S/X). Learned from
    /// Fleet API's `fleet_status` with the vehicle list or at the first command; null
    /// until then. Absent for other OEMs.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, nullable = true)]
    pub command_protocol: Option<Option<&'static str>>,
    /// Tesla signed cars only: whether the car knows keyway's application key
    /// (`fleet_status`, then every handshake). false: commands answer 409
    /// `virtual_key_not_paired` with a `pairing_url`. null until known, and for REST
    /// cars. Absent for other OEMs.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<bool>, nullable = true)]
    pub key_paired: Option<Option<bool>>,
    /// `GET /v1/vehicles/{id}` only: the accounts the car is reached through — one, or
    /// several when it is linked directly and through an aggregator — in the order reads
    /// try them (`[routes]` in the configuration); commands use the one marked
    /// `commands` (the first linked) and never another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<RouteView>>,
}

/// One route to a car.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Route)]
pub struct RouteView {
    /// The OEM or aggregator of the account.
    #[schema(example = "smartcar")]
    pub oem: String,
    /// The account (`acct_…`).
    pub account_id: String,
    /// The car's record through this account (`veh_…`; the vehicle's own id for the
    /// first-linked route).
    pub vehicle_id: String,
    /// Whether commands go through this route.
    pub commands: bool,
}

fn view(fleet: &Fleet, v: &VehicleRecord) -> VehicleView {
    let adapter = fleet.adapter(v).ok();
    // OEMs with more than one command path (Tesla: signed or REST, and whether the car
    // knows keyway's key) — as far as keyway has learned it (vehicle sync or a command).
    let path = adapter.as_ref().and_then(|a| a.command_path(&v.oem_id));
    VehicleView {
        id: v.id.to_string(),
        oem: v.oem.to_string(),
        make: adapter.as_ref().map(|a| a.info().make),
        model: v.model.clone(),
        year: v.year,
        display_name: v.display_name.clone(),
        vin: v.vin.clone(),
        capabilities: fleet.capabilities(v),
        outcome_confirmable: fleet.oem(v).is_ok_and(|o| o.can(Capability::Security)),
        command_protocol: path.map(|p| p.protocol),
        key_paired: path.map(|p| p.key_paired),
        routes: None,
    }
}

/// A page of vehicles.
#[derive(Debug, Serialize, ToSchema)]
pub struct VehiclePage {
    /// The vehicles, ordered by id.
    pub vehicles: Vec<VehicleView>,
    /// The id to continue after (`?after=`); null on the last page.
    pub next: Option<String>,
}

/// Paging of `GET /v1/vehicles`.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Vehicles per page (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Continue after this vehicle id (the previous page's `next`).
    pub after: Option<String>,
}

/// The problems of a vehicle read.
pub(super) type ReadProblems = Problems<(Edge, VehicleError)>;

/// List the vehicles the caller may reach, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/vehicles",
    tag = "vehicles",
    operation_id = "listVehicles",
    params(Page),
    responses((status = 200, description = "A page of vehicles", body = VehiclePage), ReadProblems),
    security(("bearer" = ["vehicles:read"]))
)]
pub async fn list(
    State(fleet): State<Arc<Fleet>>,
    Authed(caller): Authed,
    query: Result<axum::extract::Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<VehiclePage>, ApiError> {
    caller.require(Scope::VehiclesRead)?;
    let axum::extract::Query(page) =
        query.map_err(|e| ApiError::invalid(format!("bad query: {}", e.body_text())))?;
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 1000"));
    }
    let found = fleet.list(&caller, page.after.as_deref(), limit).await?;
    let next = (found.len() == limit as usize)
        .then(|| found.last().map(|v| v.id.to_string()))
        .flatten();
    let vehicles = found.iter().map(|v| view(&fleet, v)).collect();
    Ok(Json(VehiclePage { vehicles, next }))
}

/// One vehicle.
#[utoipa::path(
    get,
    path = "/v1/vehicles/{id}",
    tag = "vehicles",
    operation_id = "getVehicle",
    params(("id" = String, Path, description = "The vehicle (`veh_…`)")),
    responses((status = 200, description = "The vehicle", body = VehicleView), ReadProblems),
    security(("bearer" = ["vehicles:read"]))
)]
pub async fn one(
    State(fleet): State<Arc<Fleet>>,
    Authed(caller): Authed,
    Path(id): Path<crate::store::VehicleId>,
) -> Result<Json<VehicleView>, ApiError> {
    caller.require(Scope::VehiclesRead)?;
    let car = fleet.find_car(&caller, &id).await?;
    let v = &car.vehicle;
    let routes = fleet
        .read_order(&car)
        .iter()
        .map(|r| RouteView {
            oem: r.oem.to_string(),
            account_id: r.account_id.clone(),
            vehicle_id: r.id.to_string(),
            commands: r.id == v.id,
        })
        .collect();
    Ok(Json(VehicleView {
        routes: Some(routes),
        ..view(&fleet, v)
    }))
}

/// Seconds since the OEM's time; `None` when the OEM gave none.
fn age_s(recorded_at: Option<OffsetDateTime>) -> Option<i64> {
    recorded_at.map(|t| (OffsetDateTime::now_utc() - t).whole_seconds().max(0))
}

/// Where a car is.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Location)]
pub struct LocationAnswer {
    /// The vehicle.
    pub vehicle_id: String,
    /// WGS84 latitude in degrees.
    pub latitude: f64,
    /// WGS84 longitude in degrees.
    pub longitude: f64,
    /// Heading in degrees clockwise from north; null when unknown.
    pub heading: Option<f64>,
    /// Horizontal accuracy in metres, when the OEM says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy_m: Option<f64>,
    /// When the car recorded it; null when the OEM does not say (never invented).
    #[serde(with = "crate::clock::serde_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub recorded_at: Option<OffsetDateTime>,
    /// Seconds since `recorded_at`; null when that is unknown.
    pub age_s: Option<i64>,
    /// Where the answer comes from: a read of the car (`vehicle`), or a push of its OEM
    /// or aggregator (`push`).
    pub source: Source,
    /// The route it came through: the OEM of the account read (a car linked directly
    /// and through an aggregator has two; see the vehicle's `routes`).
    #[schema(example = "tesla")]
    pub route: String,
}

impl LocationAnswer {
    /// The answer for `v` at `l`, known from `source`, read through `route`.
    pub(super) fn of(
        v: &VehicleRecord,
        l: keyway_adapter::Location,
        source: Source,
        route: &VehicleRecord,
    ) -> Self {
        Self {
            vehicle_id: v.id.to_string(),
            source,
            route: route.oem.to_string(),
            latitude: l.latitude,
            longitude: l.longitude,
            heading: l.heading,
            accuracy_m: l.accuracy_m,
            recorded_at: l.recorded_at,
            age_s: age_s(l.recorded_at),
        }
    }
}

impl IntoResponse for LocationAnswer {
    /// Written field by field ([`Object`]); the bytes are serde_json's (tested).
    fn into_response(self) -> Response {
        Object::new()
            .str("vehicle_id", &self.vehicle_id)
            .f64("latitude", self.latitude)
            .f64("longitude", self.longitude)
            .opt_f64("heading", self.heading)
            .some_f64("accuracy_m", self.accuracy_m)
            .opt_time("recorded_at", self.recorded_at)
            .opt_i64("age_s", self.age_s)
            .str("source", self.source.as_str())
            .str("route", &self.route)
            .into_response()
    }
}

/// Where a car is, as its OEM last reported it (`Cache-Control: max-age=N` accepts an
/// answer up to N seconds old; `no-cache` asks the OEM now).
#[utoipa::path(
    get,
    path = "/v1/vehicles/{id}/location",
    tag = "vehicles",
    operation_id = "getVehicleLocation",
    params(
        ("id" = String, Path, description = "The vehicle (`veh_…`)"),
        ("Cache-Control" = Option<String>, Header, description = "`max-age=N` accepts an answer up to N seconds old; `no-cache` asks the OEM now")
    ),
    responses((status = 200, description = "The car's position", body = LocationAnswer), ReadProblems),
    security(("bearer" = ["location:read"]))
)]
pub async fn location(
    State(fleet): State<Arc<Fleet>>,
    Authed(caller): Authed,
    Path(id): Path<crate::store::VehicleId>,
    MaxAge(max_age): MaxAge,
) -> Result<LocationAnswer, ApiError> {
    caller.require(Scope::LocationRead)?;
    let car = fleet.find_car(&caller, &id).await?;
    let v = &car.vehicle;
    let read = fleet.position_routed(&car, max_age).await?;
    let (l, source) = read.value;
    Ok(LocationAnswer::of(v, l, source, &read.route))
}

/// Whether a car is locked.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Security)]
pub struct SecurityAnswer {
    /// The vehicle.
    pub vehicle_id: String,
    /// Whether it is locked; null when the OEM reports the lock state as unknown.
    pub locked: Option<bool>,
    /// Where the answer comes from: a read of the car (`vehicle`), a push of its OEM or
    /// aggregator (`push`), or the state keyway's last confirmed command left when that
    /// is newer than any read (`last_command`).
    pub source: Source,
    /// The route it came through: the OEM of the account read (a car linked directly
    /// and through an aggregator has two; see the vehicle's `routes`).
    #[schema(example = "tesla")]
    pub route: String,
    /// Per-opening state, when the OEM reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doors: Option<Vec<Door>>,
    /// When the car recorded it; null when the OEM does not say (never invented).
    #[serde(with = "crate::clock::serde_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub recorded_at: Option<OffsetDateTime>,
    /// Seconds since `recorded_at`; null when that is unknown.
    pub age_s: Option<i64>,
}

impl SecurityAnswer {
    /// The answer for `v` in state `s`, known from `source`, read through `route`.
    pub(super) fn of(
        v: &VehicleRecord,
        s: keyway_adapter::SecurityState,
        source: Source,
        route: &VehicleRecord,
    ) -> Self {
        Self {
            vehicle_id: v.id.to_string(),
            locked: s.locked,
            source,
            route: route.oem.to_string(),
            doors: s.doors,
            recorded_at: s.recorded_at,
            age_s: age_s(s.recorded_at),
        }
    }
}

impl IntoResponse for SecurityAnswer {
    /// Written field by field ([`Object`]); the bytes are serde_json's (tested).
    fn into_response(self) -> Response {
        let answer = Object::new()
            .str("vehicle_id", &self.vehicle_id)
            .value("locked", &self.locked)
            .str("source", self.source.as_str())
            .str("route", &self.route);
        let answer = match &self.doors {
            Some(doors) => answer.value("doors", doors),
            None => answer,
        };
        answer
            .opt_time("recorded_at", self.recorded_at)
            .opt_i64("age_s", self.age_s)
            .into_response()
    }
}

/// Whether a car is locked, and its doors (`Cache-Control` as for the location).
#[utoipa::path(
    get,
    path = "/v1/vehicles/{id}/security",
    tag = "vehicles",
    operation_id = "getVehicleSecurity",
    params(
        ("id" = String, Path, description = "The vehicle (`veh_…`)"),
        ("Cache-Control" = Option<String>, Header, description = "`max-age=N` accepts an answer up to N seconds old; `no-cache` asks the OEM now")
    ),
    responses((status = 200, description = "The car's lock state", body = SecurityAnswer), ReadProblems),
    security(("bearer" = ["security:read"]))
)]
pub async fn security(
    State(fleet): State<Arc<Fleet>>,
    Authed(caller): Authed,
    Path(id): Path<crate::store::VehicleId>,
    MaxAge(max_age): MaxAge,
) -> Result<SecurityAnswer, ApiError> {
    caller.require(Scope::SecurityRead)?;
    let car = fleet.find_car(&caller, &id).await?;
    let v = &car.vehicle;
    let read = fleet.security_routed(&car, max_age).await?;
    let (s, source) = read.value;
    Ok(SecurityAnswer::of(v, s, source, &read.route))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyway_adapter::DoorPosition;
    use proptest::prelude::*;

    async fn bytes(r: Response) -> String {
        let b = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(b.to_vec()).unwrap()
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn time() -> impl Strategy<Value = Option<OffsetDateTime>> {
        proptest::option::of((0i64..4_000_000_000, 0i64..1000).prop_map(|(s, ms)| {
            OffsetDateTime::from_unix_timestamp(s).unwrap() + time::Duration::milliseconds(ms)
        }))
    }

    proptest! {
        /// The hand-written answers are exactly what serde writes for the types the
        /// API document describes.
        #[test]
        fn the_fast_answers_are_the_documented_types(
            id in "[a-z_0-9]{0,12}",
            lat in -90.0..90.0f64,
            heading in proptest::option::of(0.0..360.0f64),
            accuracy in proptest::option::of(0.0..100.0f64),
            t in time(),
            age in proptest::option::of(0i64..1_000_000),
            locked in proptest::option::of(any::<bool>()),
            doors in proptest::option::of(proptest::collection::vec(any::<bool>(), 0..3)),
            last_command in any::<bool>(),
            pushed in any::<bool>(),
        ) {
            let l = LocationAnswer {
                vehicle_id: id.clone(), latitude: lat, longitude: -lat, heading,
                accuracy_m: accuracy, recorded_at: t, age_s: age,
                source: if pushed { Source::Push } else { Source::Vehicle },
                route: "smartcar".into(),
            };
            let want = serde_json::to_string(&l).unwrap();
            prop_assert_eq!(rt().block_on(bytes(l.into_response())), want);
            let s = SecurityAnswer {
                vehicle_id: id,
                locked,
                source: if last_command { Source::LastCommand } else { Source::Vehicle },
                route: "tesla".into(),
                doors: doors.map(|d| d.into_iter().map(|open| Door { position: DoorPosition::Trunk, open }).collect()),
                recorded_at: t,
                age_s: age,
            };
            let want = serde_json::to_string(&s).unwrap();
            prop_assert_eq!(rt().block_on(bytes(s.into_response())), want);
        }
    }
}
