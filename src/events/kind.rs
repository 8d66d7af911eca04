//! What a service hands [`super::Events`] to emit an event of a [`Kind`] (declared
//! with the event log, in the store): a [`Payload`] that knows its type and what it is
//! about ([`Subject`]).

pub use crate::store::Kind;

/// An event's payload: a struct owned by the service that emits it, serialized as the
/// event's `data`, which knows its type and what it is about.
pub trait Payload: serde::Serialize {
    /// Its type.
    fn kind(&self) -> Kind;
    /// What it is about.
    fn subject(&self) -> Subject<'_>;
}

/// What an event is about.
#[derive(Clone, Debug, Default)]
pub struct Subject<'a> {
    /// The tenant it belongs to: the only one that sees it.
    pub tenant: &'a str,
    /// The vehicle.
    pub vehicle_id: Option<&'a str>,
    /// The grant.
    pub grant_id: Option<&'a str>,
    /// The command.
    pub command_id: Option<&'a str>,
}
