//! What the command lifecycle concludes, as the rules of `run` and `reconcile` share it:
//! how a command ended ([`Outcome`]) and what one lock state observed after its send says
//! about it ([`Judged`]). Both modules decide with these; neither imports the other.

use super::CommandError;

/// How a command ended, as far as keyway can tell.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The OEM confirmed it, or a lock state observed after the send shows it.
    Succeeded,
    /// It certainly did not execute and never will.
    Failed(CommandError),
    /// The car may or may not execute it.
    Unknown(CommandError),
}

/// What an observation says about a sent command.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Judged {
    /// Observed after the send, showing the command's effect.
    Done,
    /// Observed after the OEM's command window, showing the opposite: this command will
    /// not run any more, but whether it ran and was undone since (by the owner) no state
    /// can tell. Ends the looking; never a `failed`.
    Dead,
    /// Not decided yet.
    Open,
}
