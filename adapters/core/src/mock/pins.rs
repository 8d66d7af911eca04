//! Owners' PINs as an OEM keeps them (Hyundai/Kia's PIN, Volkswagen's S-PIN): each
//! login's PIN, and the wrong ones in a row, which lock the owner out after
//! [`LOCKOUT_AFTER`] — even the right PIN is refused then, as owners report ("multiple
//! incorrect attempts will require PIN reset").

use std::collections::HashMap;

/// Wrong PINs in a row that lock an owner out.
pub const LOCKOUT_AFTER: u32 = 3;

/// Owners' PINs and the wrong tries.
#[derive(Debug, Default)]
pub struct OwnerPins {
    set: HashMap<String, String>,
    wrong: HashMap<String, u32>,
}

impl OwnerPins {
    /// Each login's PIN.
    pub fn new(set: HashMap<String, String>) -> Self {
        Self {
            set,
            wrong: HashMap::new(),
        }
    }

    /// The PIN `login` set.
    pub fn of(&self, login: &str) -> Option<String> {
        self.set.get(login).cloned()
    }

    /// Wrong PINs `login` sent in a row.
    pub fn wrong(&self, login: &str) -> u32 {
        self.wrong.get(login).copied().unwrap_or(0)
    }

    /// Checks a PIN `login` sent: `Ok`, or the tries left before (or since: 0) the
    /// lock-out.
    pub fn check(&mut self, login: &str, given: Option<&str>) -> Result<(), u32> {
        let wrong = self.wrong(login);
        let right = given.is_some() && self.set.get(login).map(String::as_str) == given;
        if wrong >= LOCKOUT_AFTER || !right {
            let now = wrong + 1;
            self.wrong.insert(login.to_string(), now);
            return Err(LOCKOUT_AFTER.saturating_sub(now));
        }
        self.wrong.remove(login);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_wrong_pins_lock_the_owner_out() {
        let mut p = OwnerPins::new([("o".to_string(), "1234".to_string())].into());
        assert_eq!(p.check("o", Some("1234")), Ok(()));
        assert_eq!(p.check("o", Some("0000")), Err(2));
        assert_eq!(p.check("o", Some("1234")), Ok(()), "a right one resets");
        assert_eq!(p.check("o", None), Err(2));
        assert_eq!(p.check("o", Some("0000")), Err(1));
        assert_eq!(p.check("o", Some("0000")), Err(0));
        assert_eq!(p.check("o", Some("1234")), Err(0), "locked out");
        assert_eq!(p.check("nobody", Some("1234")), Err(2));
    }
}
