//! The answers of BMW's read paths beside the vehicle state: a car's profile (model and
//! year) and the vehicle finder's `eventPosition`.

use keyway_adapter::http::{fix, no_fix, parse_body};
use keyway_adapter::{Delivered, Location, OemError};
use serde::Deserialize;

/// A car's profile: its model and model year (also within the vehicle list's entries).
#[derive(Deserialize)]
pub(super) struct Attributes {
    pub(super) model: Option<String>,
    pub(super) year: Option<u16>,
}

/// An error element's title and description.
#[derive(Deserialize)]
pub(super) struct ErrorDetails {
    pub(super) title: Option<String>,
    pub(super) description: Option<String>,
}

/// Parses `vehicle-data/profile`: the car's model and model year (`model`, `year`).
pub fn parse_profile(body: &[u8]) -> Result<(Option<String>, Option<u16>), OemError> {
    let a: Attributes = parse_body(body, Delivered::No)?;
    Ok((a.model.filter(|m| !m.is_empty()), a.year))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventPosition {
    position_data: Option<PositionData>,
    error_details: Option<ErrorDetails>,
}

#[derive(Deserialize)]
struct PositionData {
    status: Option<String>,
    position: Option<FinderPosition>,
}

#[derive(Deserialize)]
struct FinderPosition {
    latitude: Option<f64>,
    longitude: Option<f64>,
    heading: Option<f64>,
}

/// Parses the vehicle finder's `eventPosition`: the position the car sent. BMW's
/// `errorDetails` or a status other than `OK` is no fix (BMW did not give one), never
/// an invented place; the time is not given, so none is claimed.
pub fn parse_event_position(body: &[u8]) -> Result<Location, OemError> {
    let e: EventPosition = parse_body(body, Delivered::No)?;
    if let Some(d) = e.error_details {
        let why = d.description.or(d.title).unwrap_or_default();
        return Err(no_fix(&format!(
            "the vehicle finder gave no position: {why}"
        )));
    }
    let data = e
        .position_data
        .ok_or_else(|| no_fix("the vehicle finder answered no positionData"))?;
    if let Some(status) = data.status.as_deref().filter(|s| *s != "OK") {
        return Err(no_fix(&format!("the vehicle finder answered {status}")));
    }
    let p = data
        .position
        .ok_or_else(|| no_fix("the vehicle finder answered no position"))?;
    let (latitude, longitude) = fix(p.latitude, p.longitude)?;
    Ok(Location {
        latitude,
        longitude,
        heading: p.heading.filter(|h| (0.0..=360.0).contains(h)),
        accuracy_m: None,
        recorded_at: None,
    })
}
