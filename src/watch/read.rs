//! One reading of a watched car with calls that never wake it: the OEM's own
//! connectivity read first where its cars sleep (a sleeping car is then not asked for
//! more), then the lock state and the position where the OEM reads them directly. An
//! `Asleep` answer is the car's connectivity, never a reason to wake it; a position the
//! OEM finds only through a separate (billed, slow) locate flow is not read.

use keyway_adapter::{Capability, CommandMode};

use super::state::{Connectivity, Reading};
use crate::tokens::CallError;
use crate::vehicles::OemCall;

/// Whether the OEM has sleeping cars, and so a connectivity read worth asking for (an
/// adapter without that read answers `not_capable`). Other OEMs are not asked: each
/// call would still fetch a token and count as an operation.
fn sleeps(oem: &OemCall<'_>) -> bool {
    oem.can(Capability::Wake)
}

/// Whether the OEM answers the position in one direct read.
fn reads_position(oem: &OemCall<'_>) -> bool {
    oem.can(Capability::Locate) && oem.adapter().info().location_mode == CommandMode::Sync
}

/// The OEM requests one reading takes at most.
pub fn cost(oem: &OemCall<'_>) -> usize {
    usize::from(sleeps(oem))
        + usize::from(oem.can(Capability::Security))
        + usize::from(reads_position(oem))
}

/// What an answer says of the car's connectivity, where it says anything.
fn connectivity_of(e: &CallError) -> Option<Connectivity> {
    crate::vehicles::connectivity_of(e).map(Into::into)
}

/// Reads what the car shows now without waking it; also how many OEM requests that
/// took.
pub async fn reading(oem: &OemCall<'_>) -> (Reading, usize) {
    let mut r = Reading::default();
    let mut asked = 0;
    if sleeps(oem) {
        asked += 1;
        let c = oem
            .call("connectivity", |cx, adapter, car| async move {
                adapter.connectivity(&cx, &car).await
            })
            .await;
        match c {
            Ok(c) => r.connectivity = Some(c.into()),
            Err(e) => r.connectivity = connectivity_of(&e),
        }
        if r.connectivity.is_some_and(|c| c != Connectivity::Online) {
            return (r, asked);
        }
    }
    if oem.can(Capability::Security) {
        asked += 1;
        let s = oem
            .call("security", |cx, adapter, car| async move {
                adapter.security(&cx, &car).await
            })
            .await;
        match s {
            Ok(s) => r.security = Some(s),
            Err(e) => {
                r.connectivity = connectivity_of(&e).or(r.connectivity);
                if r.connectivity.is_some_and(|c| c != Connectivity::Online) {
                    return (r, asked);
                }
            }
        }
    }
    if reads_position(oem) {
        asked += 1;
        let l = oem
            .call("location", |cx, adapter, car| async move {
                adapter.locate(&cx, &car).await
            })
            .await;
        match l {
            Ok(l) => r.location = Some(l),
            Err(e) => r.connectivity = connectivity_of(&e).or(r.connectivity),
        }
    }
    (r, asked)
}
