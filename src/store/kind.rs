//! The event types keyway records ([`Kind`]), declared once: the event log's
//! vocabulary, which the store reads back typed and the events service emits; and the
//! types a webhook subscribes to ([`EventTypes`]: all of them, or some).

/// Declares [`Kind`] once: each variant with its doc and wire name, from which the enum
/// (serde's name is the wire name), [`Kind::ALL`] and [`Kind::as_str`] follow.
macro_rules! kinds {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:tt,)+) => {
        /// Every event type keyway emits.
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
        )]
        #[schema(as = EventType)]
        pub enum Kind {
            $($(#[doc = $doc])* #[serde(rename = $name)] $variant,)+
        }

        impl Kind {
            /// Every type, in documentation order.
            pub const ALL: &[Kind] = &[$(Kind::$variant,)+];

            /// The wire name (`command.succeeded`, …).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => $name,)+
                }
            }
        }
    };
}

kinds! {
    /// A command succeeded.
    CommandSucceeded = "command.succeeded",
    /// A command failed (keyway is sure it did not happen).
    CommandFailed = "command.failed",
    /// A command's outcome is unknown (the car may still run it).
    CommandUnknown = "command.unknown",
    /// An `unknown` command's outcome was learned later.
    CommandResolved = "command.resolved",
    /// A grant was created.
    GrantCreated = "grant.created",
    /// A grant's unlock succeeded.
    GrantUnlocked = "grant.unlocked",
    /// A grant was completed.
    GrantCompleted = "grant.completed",
    /// A grant was revoked.
    GrantRevoked = "grant.revoked",
    /// A grant's car was relocked (confirmed): by keyway's relock, or by the owner's own
    /// lock read back after the grant's unlock (`relocked_by`).
    GrantRelocked = "grant.relocked",
    /// A grant's relock could not be confirmed.
    GrantRelockFailed = "grant.relock_failed",
    /// A late unlock opened a relocked car; it was relocked again.
    GrantRelockRepeated = "grant.relock_repeated",
    /// A grant's car left the grant's geofence while the grant is in use.
    GrantVehicleMoved = "grant.vehicle_moved",
    /// A door, the trunk or the frunk of a grant's car was opened after its relock,
    /// while keyway still watches it (`opened` names them).
    GrantOpenedAfterRelock = "grant.opened_after_relock",
    /// An OEM account must be linked again by its owner.
    AccountReauthorizationRequired = "account.reauthorization_required",
    /// A watched car's lock, openings, position or connectivity changed.
    VehicleStateChanged = "vehicle.state_changed",
}

impl Kind {
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

/// A type equals its wire name (`Kind::GrantRelocked == "grant.relocked"`).
impl PartialEq<&str> for Kind {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

/// The event types a webhook subscribes to: every one, or those listed. Stored as `*`
/// or the names comma-separated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventTypes {
    /// Every type, including types added later.
    All,
    /// Only these.
    Only(Vec<Kind>),
}

impl EventTypes {
    /// `kinds`, or every type when none is named.
    pub fn of(kinds: &[Kind]) -> Self {
        match kinds {
            [] => Self::All,
            some => Self::Only(some.to_vec()),
        }
    }

    /// Whether events of `kind` are wanted.
    pub fn wants(&self, kind: Kind) -> bool {
        match self {
            Self::All => true,
            Self::Only(kinds) => kinds.contains(&kind),
        }
    }

    /// The wire names (`*` for every type).
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::All => vec!["*".into()],
            Self::Only(kinds) => kinds.iter().map(|k| k.as_str().to_string()).collect(),
        }
    }

    /// The stored form: `*`, or the names comma-separated.
    pub fn as_text(&self) -> String {
        self.names().join(",")
    }

    /// The types of a stored form; `None` when a name is no type.
    pub fn parse(text: &str) -> Option<Self> {
        if text == "*" {
            return Some(Self::All);
        }
        text.split(',')
            .map(Kind::parse)
            .collect::<Option<Vec<_>>>()
            .map(Self::Only)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_wants_its_types_and_reads_back_from_its_stored_form() {
        let all = EventTypes::of(&[]);
        assert!(all.wants(Kind::GrantUnlocked));
        let some = EventTypes::of(&[Kind::GrantUnlocked, Kind::GrantRelocked]);
        assert!(some.wants(Kind::GrantRelocked));
        assert!(!some.wants(Kind::CommandFailed));
        for t in [all, some] {
            assert_eq!(EventTypes::parse(&t.as_text()), Some(t));
        }
        assert_eq!(EventTypes::parse("grant.unlocked,sideways"), None);
    }
}
