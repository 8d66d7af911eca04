//! The conformance check for commands that need the owner's PIN.

use super::Harness;
use crate::{Call, Command, Delivered, OemError, Secret, VehicleRef};

/// A car whose commands need the owner's PIN (the mock says which): without one the
/// adapter answers `PinRequired`, with a wrong one `PinRejected` — both certain, nothing
/// reached the car, and the PIN is in no error — while the suite's other checks run
/// with the owner's PIN. An adapter that declares no PIN has no car needing one.
pub async fn pins_are_asked_for(h: &Harness) {
    let adapter = h.adapter.as_ref();
    let needing: Vec<String> = h
        .mock
        .vehicle_ids()
        .into_iter()
        .filter(|id| h.mock.needs_pin(id))
        .collect();
    if !adapter.info().owner_pin {
        assert!(
            needing.is_empty(),
            "cars need a PIN the adapter does not declare"
        );
        return;
    }
    for id in needing {
        let car = VehicleRef { oem_id: id.clone() };
        let before = h.mock.locked(&id);
        let action = if before {
            Command::Unlock
        } else {
            Command::Lock
        };
        let none = Call {
            pin: None,
            ..h.call()
        };
        let e = adapter.send(&none, &car, action).await.expect_err("no PIN");
        assert!(matches!(e, OemError::PinRequired { .. }), "no PIN: {e:?}");
        assert_eq!(e.delivered(), Delivered::No);
        let wrong_pin = match h.mock.owner_pin().as_deref() {
            Some("0000") => "9999",
            _ => "0000",
        };
        let wrong = Call {
            pin: Some(Secret::new(wrong_pin)),
            ..h.call()
        };
        let e = adapter
            .send(&wrong, &car, action)
            .await
            .expect_err("a wrong PIN");
        assert!(
            matches!(e, OemError::PinRejected { .. }),
            "a wrong PIN: {e:?}"
        );
        assert_eq!(e.delivered(), Delivered::No);
        assert!(
            !format!("{e} {e:?}").contains(wrong_pin),
            "the PIN in an error"
        );
        assert_eq!(
            h.mock.locked(&id),
            before,
            "a refused command changed the car"
        );
    }
}
