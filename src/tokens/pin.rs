//! Owners' PINs: a per-account secret some OEMs need for commands (Hyundai/Kia CCS2
//! trade it for a control token; Volkswagen's S-PIN). A PIN is sealed like the tokens
//! (bound to its account), never returned or logged, and re-sealed with `rotate-key`.
//! Once the OEM refuses it, keyway stops using it until a new one replaces it: repeated
//! wrong PINs lock an owner out at the OEM.

use keyway_adapter::Secret;
use time::OffsetDateTime;

use super::{TokenError, Tokens};

/// What keyway may do with an account's PIN.
#[derive(Clone, Debug)]
pub enum Pin {
    /// None is set.
    Unset,
    /// Set, and not refused: `sealed` names this very PIN when it must be marked refused.
    Usable {
        /// The PIN.
        secret: Secret,
        /// As stored.
        sealed: String,
    },
    /// The OEM refused it then; not to be tried again.
    Rejected {
        /// When.
        at: OffsetDateTime,
    },
}

fn pin_aad(account_id: &str) -> String {
    format!("{account_id}/pin")
}

/// Checks a PIN's form: 4 to 8 digits (the OEMs' apps ask for 4; some allow more).
pub fn valid(pin: &str) -> bool {
    (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

impl Tokens {
    /// Sets (replaces) the account's PIN; a refused one becomes usable again.
    pub async fn set_pin(&self, account_id: &str, pin: &Secret) -> Result<(), TokenError> {
        let sealed = self.sealer.seal(pin, &pin_aad(account_id))?;
        Ok(self.store.set_account_pin(account_id, &sealed).await?)
    }

    /// The account's PIN as keyway may use it.
    pub async fn pin(&self, account_id: &str) -> Result<Pin, TokenError> {
        Ok(match self.store.account_pin(account_id).await? {
            None => Pin::Unset,
            Some(p) => match p.rejected_at {
                Some(at) => Pin::Rejected { at },
                None => Pin::Usable {
                    secret: self.open(&p.sealed, &pin_aad(account_id))?,
                    sealed: p.sealed,
                },
            },
        })
    }

    /// Marks the PIN `sealed` refused by the OEM (unless it was replaced meanwhile).
    pub async fn reject_pin(&self, account_id: &str, sealed: &str) -> Result<bool, TokenError> {
        let marked = self.store.reject_account_pin(account_id, sealed).await?;
        if marked {
            tracing::warn!(
                account = account_id,
                "the OEM refused the account's PIN; not used again until replaced"
            );
        }
        Ok(marked)
    }

    /// Re-seals the account's PIN with the active key if it needs it (keeping whether it
    /// was refused); true if it changed.
    pub(super) async fn reseal_pin(&self, account_id: &str) -> Result<bool, TokenError> {
        let Some(p) = self.store.account_pin(account_id).await? else {
            return Ok(false);
        };
        if !self.sealer.needs_rotation(&p.sealed) {
            return Ok(false);
        }
        let new = self.resealed(&p.sealed, &pin_aad(account_id))?;
        Ok(self
            .store
            .reseal_account_pin(account_id, &p.sealed, &new)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::valid;

    #[test]
    fn a_pin_is_four_to_eight_digits() {
        for ok in ["1234", "00000000", "987654"] {
            assert!(valid(ok), "{ok}");
        }
        for bad in ["123", "123456789", "12a4", "", "１２３４", " 1234"] {
            assert!(!valid(bad), "{bad}");
        }
    }
}
