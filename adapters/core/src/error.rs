//! The one error taxonomy every adapter maps its OEM's failures into.
//!
//! An adapter decides *what happened* — the token was rejected, the car is asleep, the
//! OEM refused, the quota is spent — and, for commands, whether the OEM may have applied
//! the command ([`Delivered`]). keyway's core decides *what to do* (refresh, wake, wait,
//! reconcile, give up) from this value alone, so the retry decision is a function of the
//! error and never guesswork at a call site.

use std::time::Duration;

/// Whether a request may have taken effect at the OEM.
///
/// The core re-sends a command only when this is [`Delivered::No`]; [`Delivered::Unknown`]
/// makes it reconcile (poll the command or read the car's state) instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// The OEM certainly did not act on the request (rejected before processing).
    No,
    /// The request may or may not have been applied (timeout, reset, 5xx mid-flight).
    Unknown,
    /// The OEM accepted the request.
    Yes,
}

/// What went wrong talking to an OEM, classified for the core.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum OemError {
    /// The OEM rejected the access token (expired or revoked): refresh and replay once.
    #[error("the OEM rejected the access token: {detail}")]
    Unauthorized {
        /// OEM's explanation, free of secrets.
        detail: String,
    },
    /// The OEM rejected the refresh token or grant: the owner must link the account again.
    #[error("the OEM account must be linked again: {detail}")]
    ReauthorizationRequired {
        /// OEM's explanation, free of secrets.
        detail: String,
    },
    /// The token lacks a scope or the account may not act on this vehicle.
    #[error("the OEM refused access: {detail}")]
    Forbidden {
        /// OEM's explanation.
        detail: String,
    },
    /// The OEM rejects keyway's own application credentials (an API key or
    /// application id sent with every call, not the owner's token): an operator must fix
    /// keyway's configuration; the owner need not relink, and refreshing cannot help.
    #[error("the OEM rejects keyway's application credentials: {detail}")]
    ClientRejected {
        /// OEM's explanation, free of secrets.
        detail: String,
    },
    /// The OEM does not know the vehicle.
    #[error("the OEM does not know this vehicle")]
    NotFound,
    /// The car is asleep and must be woken before it answers.
    #[error("the vehicle is asleep")]
    Asleep,
    /// The car is offline (no connectivity); waking will not help now.
    #[error("the vehicle is unreachable: {detail}")]
    Unreachable {
        /// OEM's explanation.
        detail: String,
    },
    /// The OEM or the car refused the command (user present, door open, ...).
    #[error("the vehicle refused the command: {reason}")]
    Refused {
        /// OEM's reason, e.g. `user_present`.
        reason: String,
    },
    /// The OEM answered, but has no position for the car now (no GPS fix, location
    /// sharing off): a value of its own, not an upstream failure — and never 0,0.
    #[error("the OEM has no position for the vehicle: {detail}")]
    NoFix {
        /// What the answer said (or lacked).
        detail: String,
    },
    /// The car does not know the application's key (signed commands): its owner must
    /// pair it first. Nothing was executed.
    #[error("the vehicle does not know keyway's key: {detail}")]
    KeyNotPaired {
        /// Where the owner pairs the key, when keyway knows it.
        pairing_url: Option<String>,
        /// What said so.
        detail: String,
    },
    /// The command needs the owner's PIN (a control token is made from it: Hyundai/Kia
    /// CCS2, Volkswagen's S-PIN) and the account has none keyway may use. Nothing was
    /// sent to the car.
    #[error("the owner's PIN is needed: {detail}")]
    PinRequired {
        /// What needs it.
        detail: String,
    },
    /// The OEM refused the owner's PIN. Nothing was sent to the car; the PIN must not be
    /// tried again (repeated wrong PINs lock the owner out at the OEM).
    #[error("the OEM refused the owner's PIN: {detail}")]
    PinRejected {
        /// What the OEM said.
        detail: String,
    },
    /// An accepted asynchronous command expired before the car executed it.
    #[error("the command expired before the vehicle executed it")]
    Expired,
    /// The OEM's rate limit or quota is spent; nothing was processed.
    #[error("the OEM rate limit is exhausted")]
    RateLimited {
        /// When the OEM says to try again, if it said.
        retry_after: Option<Duration>,
    },
    /// keyway paused calls to a failing OEM (circuit breaker); nothing was sent.
    #[error("keyway paused calls to this OEM")]
    CircuitOpen {
        /// When a probe may go through.
        retry_after: Duration,
    },
    /// The OEM cannot do this for this vehicle (capability missing).
    #[error("the OEM does not support {what} for this vehicle")]
    NotCapable {
        /// The missing capability.
        what: String,
    },
    /// The OEM answered with a server error.
    #[error("the OEM answered {status}: {detail}")]
    Upstream {
        /// HTTP status from the OEM.
        status: u16,
        /// OEM's explanation.
        detail: String,
        /// Whether a command may have been applied.
        delivered: Delivered,
    },
    /// No answer in time.
    #[error("the OEM did not answer in time")]
    Timeout {
        /// Whether a command may have been applied.
        delivered: Delivered,
    },
    /// The connection failed.
    #[error("could not reach the OEM: {detail}")]
    Transport {
        /// What failed.
        detail: String,
        /// `No` when the connection was never established.
        delivered: Delivered,
    },
    /// The OEM's answer could not be understood.
    #[error("the OEM's answer could not be understood: {detail}")]
    InvalidResponse {
        /// What was wrong with it.
        detail: String,
        /// Whether a command may have been applied (a garbled 200 may mean yes).
        delivered: Delivered,
    },
}

impl OemError {
    /// Whether the OEM may have applied the request that produced this error.
    pub fn delivered(&self) -> Delivered {
        match self {
            OemError::Unauthorized { .. }
            | OemError::ReauthorizationRequired { .. }
            | OemError::Forbidden { .. }
            | OemError::ClientRejected { .. }
            | OemError::NotFound
            | OemError::Asleep
            | OemError::Unreachable { .. }
            | OemError::RateLimited { .. }
            | OemError::CircuitOpen { .. }
            | OemError::NotCapable { .. }
            | OemError::NoFix { .. }
            | OemError::KeyNotPaired { .. }
            | OemError::PinRequired { .. }
            | OemError::PinRejected { .. } => Delivered::No,
            OemError::Refused { .. } | OemError::Expired => Delivered::Yes,
            OemError::Upstream { delivered, .. }
            | OemError::Timeout { delivered }
            | OemError::Transport { delivered, .. }
            | OemError::InvalidResponse { delivered, .. } => *delivered,
        }
    }

    /// This error, from a request made before a command (a check of the owner's PIN):
    /// whatever it leaves open about its own request, the command itself was not sent.
    pub fn before_the_command(self) -> Self {
        match self {
            OemError::Upstream { status, detail, .. } => OemError::Upstream {
                status,
                detail,
                delivered: Delivered::No,
            },
            OemError::Timeout { .. } => OemError::Timeout {
                delivered: Delivered::No,
            },
            OemError::Transport { detail, .. } => OemError::Transport {
                detail,
                delivered: Delivered::No,
            },
            OemError::InvalidResponse { detail, .. } => OemError::InvalidResponse {
                detail,
                delivered: Delivered::No,
            },
            e => e,
        }
    }

    /// A short stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            OemError::Unauthorized { .. } => "unauthorized",
            OemError::ReauthorizationRequired { .. } => "reauthorization_required",
            OemError::Forbidden { .. } => "forbidden",
            OemError::ClientRejected { .. } => "client_rejected",
            OemError::NotFound => "not_found",
            OemError::Asleep => "asleep",
            OemError::Unreachable { .. } => "unreachable",
            OemError::Refused { .. } => "refused",
            OemError::Expired => "expired",
            OemError::RateLimited { .. } => "rate_limited",
            OemError::CircuitOpen { .. } => "circuit_open",
            OemError::NotCapable { .. } => "not_capable",
            OemError::NoFix { .. } => "no_fix",
            OemError::KeyNotPaired { .. } => "key_not_paired",
            OemError::PinRequired { .. } => "pin_required",
            OemError::PinRejected { .. } => "pin_rejected",
            OemError::Upstream { .. } => "upstream",
            OemError::Timeout { .. } => "timeout",
            OemError::Transport { .. } => "transport",
            OemError::InvalidResponse { .. } => "invalid_response",
        }
    }

    /// Maps an HTTP error status the adapter has no more specific reading for.
    ///
    /// `command` says whether the request was a command: a 5xx on a command leaves
    /// its outcome unknown, a 4xx means the OEM rejected it before acting.
    pub fn from_status(status: u16, detail: impl Into<String>, command: bool) -> Self {
        let detail = detail.into();
        match status {
            401 => OemError::Unauthorized { detail },
            403 => OemError::Forbidden { detail },
            404 => OemError::NotFound,
            429 => OemError::RateLimited { retry_after: None },
            500..=599 => OemError::Upstream {
                status,
                detail,
                delivered: if command {
                    Delivered::Unknown
                } else {
                    Delivered::No
                },
            },
            _ => OemError::Upstream {
                status,
                detail,
                delivered: Delivered::No,
            },
        }
    }
}

/// Parses an HTTP `Retry-After` value given in seconds (the form OEMs use).
pub fn parse_retry_after(value: Option<&http::HeaderValue>) -> Option<Duration> {
    let secs: f64 = value?.to_str().ok()?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// A wait an OEM announces in words: "Retry in 37829 seconds", "Try again in 2
/// seconds", "retry after 5 minutes" (any case; seconds, minutes or hours).
pub fn wait_in_text(text: &str) -> Option<Duration> {
    let lower = text.to_ascii_lowercase();
    for marker in [
        "retry in ",
        "try again in ",
        "retry after ",
        "try again after ",
    ] {
        let Some(at) = lower.find(marker) else {
            continue;
        };
        let mut words = lower[at + marker.len()..].split_whitespace();
        let Some(n) = words
            .next()
            .and_then(|n| n.trim_end_matches(['.', ',']).parse::<f64>().ok())
        else {
            continue;
        };
        let unit = words.next().unwrap_or("seconds");
        let secs = if unit.starts_with("min") {
            n * 60.0
        } else if unit.starts_with("hour") {
            n * 3600.0
        } else {
            n
        };
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(7.0 * 86_400.0)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_announced_in_words() {
        let w = |t| wait_in_text(t).map(|d| d.as_secs());
        assert_eq!(
            w("Rate limit exceeded. Retry in 37829 seconds"),
            Some(37_829)
        );
        assert_eq!(
            w("Rate limit is exceeded. Try again in 2 seconds."),
            Some(2)
        );
        assert_eq!(w("retry after 5 minutes"), Some(300));
        assert_eq!(w("too many requests"), None);
    }

    #[test]
    fn commands_with_5xx_are_ambiguous_reads_are_not() {
        assert_eq!(
            OemError::from_status(503, "x", true).delivered(),
            Delivered::Unknown
        );
        assert_eq!(
            OemError::from_status(503, "x", false).delivered(),
            Delivered::No
        );
        assert_eq!(
            OemError::from_status(401, "x", true).delivered(),
            Delivered::No
        );
    }

    #[test]
    fn retry_after_seconds() {
        let v = http::HeaderValue::from_static("2");
        assert_eq!(parse_retry_after(Some(&v)), Some(Duration::from_secs(2)));
        let bad = http::HeaderValue::from_static("soon");
        assert_eq!(parse_retry_after(Some(&bad)), None);
        let neg = http::HeaderValue::from_static("-1");
        assert_eq!(parse_retry_after(Some(&neg)), None);
    }
}
