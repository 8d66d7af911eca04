//! An event as it leaves keyway ([`EventView`]): the JSON a stream sends as an SSE
//! event's data and a webhook POSTs, and its schema in the API document.

use serde_json::Value;

use super::kind::Kind;
use crate::clock::timestamp;
use crate::store::EventRecord;

/// The JSON of an event, as streamed and as POSTed to webhooks.
pub fn view(e: &EventRecord) -> EventView {
    EventView {
        id: e.id.clone(),
        seq: e.seq,
        kind: e.kind,
        created_at: timestamp(e.created_at),
        vehicle_id: e.vehicle_id.as_ref().map(ToString::to_string),
        grant_id: e.grant_id.clone(),
        command_id: e.command_id.as_ref().map(ToString::to_string),
        data: serde_json::from_str::<Value>(&e.data).unwrap_or(Value::Null),
    }
}

/// An event as a stream and a webhook deliver it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Event)]
pub struct EventView {
    /// `evt_…`.
    pub id: String,
    /// Its number among its tenant's events: the SSE id and the resume cursor
    /// (`Last-Event-ID`, `?after=`).
    pub seq: i64,
    /// The event type.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// When it happened.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The vehicle it is about.
    pub vehicle_id: Option<String>,
    /// The grant it is about.
    pub grant_id: Option<String>,
    /// The command it is about.
    pub command_id: Option<String>,
    /// The payload: the command (`command.*`), the grant (`grant.*`) or the account
    /// (`account.*`) as it stood, or a watched car's change (`vehicle.state_changed`).
    #[schema(schema_with = payload_schema)]
    pub data: Value,
}

/// The payload schema of each family of event types (by the type's prefix): what an
/// event's `data` is. A new family needs its row, or the test below fails.
const PAYLOADS: &[(&str, &str)] = &[
    ("command.", "Command"),
    ("grant.", "Grant"),
    ("account.", "ReauthorizationRequired"),
    ("vehicle.", "StateChange"),
];

/// The schema of an event's `data`: one of the payloads.
fn payload_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::Ref;
    let mut one_of = utoipa::openapi::schema::OneOfBuilder::new();
    for (_, schema) in PAYLOADS {
        one_of = one_of.item(Ref::from_schema_name(*schema));
    }
    utoipa::openapi::schema::Schema::OneOf(one_of.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_a_payload_schema() {
        for k in Kind::ALL {
            assert!(
                PAYLOADS
                    .iter()
                    .any(|(prefix, _)| k.as_str().starts_with(prefix)),
                "{} has no payload schema in the API document",
                k.as_str()
            );
        }
    }
}
