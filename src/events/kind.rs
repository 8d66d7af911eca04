//! The event types keyway emits ([`Kind`]) and what a service hands [`super::Events`]
//! to emit one: a [`Payload`] that knows its type and what it is about ([`Subject`]).

/// Every event type keyway emits.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[schema(as = EventType)]
pub enum Kind {
    /// A command succeeded.
    #[serde(rename = "command.succeeded")]
    CommandSucceeded,
    /// A command failed (keyway is sure it did not happen).
    #[serde(rename = "command.failed")]
    CommandFailed,
    /// A command's outcome is unknown (the car may still run it).
    #[serde(rename = "command.unknown")]
    CommandUnknown,
    /// An `unknown` command's outcome was learned later.
    #[serde(rename = "command.resolved")]
    CommandResolved,
    /// A grant was created.
    #[serde(rename = "grant.created")]
    GrantCreated,
    /// A grant's unlock succeeded.
    #[serde(rename = "grant.unlocked")]
    GrantUnlocked,
    /// A grant was completed.
    #[serde(rename = "grant.completed")]
    GrantCompleted,
    /// A grant was revoked.
    #[serde(rename = "grant.revoked")]
    GrantRevoked,
    /// A grant's car was relocked (confirmed).
    #[serde(rename = "grant.relocked")]
    GrantRelocked,
    /// A grant's relock could not be confirmed.
    #[serde(rename = "grant.relock_failed")]
    GrantRelockFailed,
    /// A late unlock opened a relocked car; it was relocked again.
    #[serde(rename = "grant.relock_repeated")]
    GrantRelockRepeated,
    /// An OEM account must be linked again by its owner.
    #[serde(rename = "account.reauthorization_required")]
    AccountReauthorizationRequired,
}

impl Kind {
    /// Every type, in documentation order.
    pub const ALL: &[Kind] = &[
        Kind::CommandSucceeded,
        Kind::CommandFailed,
        Kind::CommandUnknown,
        Kind::CommandResolved,
        Kind::GrantCreated,
        Kind::GrantUnlocked,
        Kind::GrantCompleted,
        Kind::GrantRevoked,
        Kind::GrantRelocked,
        Kind::GrantRelockFailed,
        Kind::GrantRelockRepeated,
        Kind::AccountReauthorizationRequired,
    ];

    /// The wire name (`command.succeeded`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::CommandSucceeded => "command.succeeded",
            Kind::CommandFailed => "command.failed",
            Kind::CommandUnknown => "command.unknown",
            Kind::CommandResolved => "command.resolved",
            Kind::GrantCreated => "grant.created",
            Kind::GrantUnlocked => "grant.unlocked",
            Kind::GrantCompleted => "grant.completed",
            Kind::GrantRevoked => "grant.revoked",
            Kind::GrantRelocked => "grant.relocked",
            Kind::GrantRelockFailed => "grant.relock_failed",
            Kind::GrantRelockRepeated => "grant.relock_repeated",
            Kind::AccountReauthorizationRequired => "account.reauthorization_required",
        }
    }

    /// The type with this wire name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// Every wire name, comma-separated (for error messages).
    pub fn list() -> String {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        names.join(", ")
    }
}

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
