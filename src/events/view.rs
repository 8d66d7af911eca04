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
        kind: e.kind.clone(),
        created_at: timestamp(e.created_at),
        vehicle_id: e.vehicle_id.clone(),
        grant_id: e.grant_id.clone(),
        command_id: e.command_id.clone(),
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
    #[schema(value_type = Kind)]
    pub kind: String,
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
    /// (`account.*`) as it stood.
    #[schema(schema_with = payload_schema)]
    pub data: Value,
}

/// The schema of an event's `data`: one of the payloads.
fn payload_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::Ref;
    utoipa::openapi::schema::Schema::OneOf(
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(Ref::from_schema_name("Command"))
            .item(Ref::from_schema_name("Grant"))
            .item(Ref::from_schema_name("ReauthorizationRequired"))
            .build(),
    )
}
