//! What the suite runs an adapter through: the [`Harness`] (the adapter, its mock, how to
//! reach it), a call as the mock's owner ([`owner_call`]), and a command driven to its
//! final answer ([`drive`]).

use std::sync::Arc;
use std::time::Duration;

use crate::mock::MockControl;
use crate::{Adapter, Call, Command, OemError, Progress, Secret, Sent, VehicleRef};

/// An adapter, its mock, and how to reach it.
pub struct Harness {
    /// The adapter under test, pointed at the mock.
    pub adapter: Arc<dyn Adapter>,
    /// Steering for the mock.
    pub mock: Arc<dyn MockControl>,
    /// The outbound HTTP handle (usually [`crate::transport::loopback_http`]).
    pub http: crate::Http,
}

/// A call as the mock's default owner, over loopback (for tests that call a mock
/// directly, e.g. shape checks).
pub fn owner_call(mock: &dyn MockControl) -> Call {
    Call {
        http: crate::transport::loopback_http(),
        token: Secret::new(mock.access_token()),
        command_id: None,
        account: None,
        pin: mock.owner_pin().map(Secret::new),
    }
}

impl Harness {
    pub(super) fn call(&self) -> Call {
        Call {
            http: self.http.clone(),
            token: Secret::new(self.mock.access_token()),
            command_id: None,
            account: None,
            pin: self.mock.owner_pin().map(Secret::new),
        }
    }

    pub(super) fn first_vehicle(&self) -> VehicleRef {
        let id = self.mock.vehicle_ids().into_iter().next();
        VehicleRef {
            oem_id: id.expect("the mock has at least one vehicle"),
        }
    }
}

/// Sends `c` and, for asynchronous OEMs, polls until a final answer (bounded); for an
/// OEM that reports no outcome, reads the lock state until it shows `c` (as keyway
/// decides such a command).
pub async fn drive(
    adapter: &dyn Adapter,
    cx: &Call,
    v: &VehicleRef,
    c: Command,
) -> Result<(), OemError> {
    let pending = match adapter.send(cx, v, c).await? {
        Sent::Completed => return Ok(()),
        Sent::Accepted => return shows(adapter, cx, v, c).await,
        Sent::Pending(p) => p,
    };
    let mut delay = Duration::from_millis(pending.poll_after_ms);
    for _ in 0..500 {
        tokio::time::sleep(delay.min(Duration::from_millis(50))).await;
        match adapter.poll(cx, v, c, &pending).await? {
            Progress::Pending { poll_after } => delay = poll_after.unwrap_or(delay),
            Progress::Succeeded => return Ok(()),
            Progress::Failed(e) => return Err(e),
        }
    }
    panic!("{} did not finish after 500 polls", c.as_str())
}

/// Reads the lock state until it shows what `c` leaves (bounded).
async fn shows(
    adapter: &dyn Adapter,
    cx: &Call,
    v: &VehicleRef,
    c: Command,
) -> Result<(), OemError> {
    for _ in 0..500 {
        if adapter.security(cx, v).await?.locked == Some(c.leaves_locked()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the lock state never showed {} after 500 reads", c.as_str())
}
