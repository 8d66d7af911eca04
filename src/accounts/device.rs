//! Finishing a device link (RFC 8628): the caller polls keyway, keyway polls the OEM —
//! once per caller's poll, and never sooner than the OEM's interval since the last one
//! ([`Polls`]; a poll inside it is answered "pending" without asking the OEM, which
//! would answer `slow_down` and make every later poll wait longer). One poll of a link
//! at a time asks (another meanwhile is answered "pending"); it takes the link's
//! `state` and puts it back while the owner has not decided. The route runs the poll
//! in a task of its own, so a caller gone mid-poll does not leave the link taken. A
//! poll by another tenant finds no link.
//!
//! The intervals are this replica's memory ([`super::polls`]): a poll through another
//! replica asks the OEM, which says `slow_down` if it was too soon.

use std::time::Duration;

use super::polls::Wait;
use super::{AccountError, Accounts, DevicePoll, declined, no_link, verifier_aad};
use crate::auth::Caller;
use crate::tokens::device::{self, DEFAULT_INTERVAL, Polled, SLOW_DOWN};

impl Accounts {
    /// One poll of the device link `state` for `caller` (of the tenant that started
    /// it): the account once the owner approved, else how long to wait.
    pub async fn poll_device(
        &self,
        caller: &Caller,
        state: &str,
    ) -> Result<DevicePoll, AccountError> {
        caller.require_unrestricted("link accounts")?;
        let hash = super::state_hash(state);
        let now = self.clock.now();
        if let Some(wait) = self.device_polls.early(&hash, now) {
            return Ok(DevicePoll::Pending(wait));
        }
        // Another poll of this link is asking the OEM (a client's retry racing its
        // first try): this one waits its turn rather than finding the link taken.
        let Some(_asking) = self.device_polls.begin(&hash) else {
            let wait = self.device_polls.interval(&hash, DEFAULT_INTERVAL);
            return Ok(DevicePoll::Pending(wait));
        };
        let (link, hash) = self.take_link(state).await?;
        // Another tenant's link is not this caller's to poll: it stays for its own.
        if link.caller != caller.tenant {
            self.store.put_link_state(&link).await?;
            return Err(no_link());
        }
        let entry = self.enabled(&link.oem)?;
        if entry.adapter.info().oauth.linking.device().is_none() {
            self.store.put_link_state(&link).await?;
            // No device link waits for this state (as for any unknown state); the link
            // stays for its own ending.
            return Err(AccountError::NoLink(
                "no device link waits for this state: this link finishes at the OEM's redirect"
                    .into(),
            ));
        }
        let code = self.sealer.open(&link.verifier, &verifier_aad(&hash))?;
        let interval = self.device_polls.interval(&hash, DEFAULT_INTERVAL);
        let polled = match device::poll(entry, &code).await {
            Ok(p) => p,
            Err(e) => {
                // The OEM's trouble (or keyway's client): the owner's approval may
                // still come; the link waits for the next poll.
                self.store.put_link_state(&link).await?;
                return Err(e.into());
            }
        };
        match polled {
            Polled::Pending { slow_down } => {
                self.store.put_link_state(&link).await?;
                let interval = interval + if slow_down { SLOW_DOWN } else { Duration::ZERO };
                let now = self.clock.now();
                let wait = Wait {
                    next: now + interval,
                    interval,
                    expires_at: link.expires_at,
                };
                self.device_polls.set(&hash, now, wait);
                Ok(DevicePoll::Pending(interval))
            }
            Polled::Expired => {
                self.device_polls.forget(&hash);
                Err(AccountError::NoLink(
                    "the owner did not approve the code in time; start the link again".into(),
                ))
            }
            Polled::Refused { error, detail } => {
                self.device_polls.forget(&hash);
                Err(declined(link, error, Some(detail)))
            }
            Polled::Granted(granted) => {
                self.device_polls.forget(&hash);
                self.link(entry, &link, &hash, &granted)
                    .await
                    .map(DevicePoll::Linked)
            }
        }
    }
}
