//! What an adapter learned of each car from its OEM and keeps for later calls — a
//! capability the vehicle list names (Volkswagen's and Škoda's `access`), the protocol a
//! car speaks (Hyundai/Kia's CCS2) — by the OEM's id of the car ([`PerCar`]). Held in
//! memory only: after a restart the adapter asks again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One value per car, learned from the OEM: cheap to clone, clones share it.
#[derive(Clone, Debug)]
pub struct PerCar<T>(Arc<Mutex<HashMap<String, T>>>);

impl<T> Default for PerCar<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T: Copy> PerCar<T> {
    /// What is known of car `id`; `None` when nothing was learned since start.
    pub fn get(&self, id: &str) -> Option<T> {
        self.0.lock().ok()?.get(id).copied()
    }

    /// Keeps what was learned of car `id`.
    pub fn set(&self, id: &str, value: T) {
        if let Ok(mut known) = self.0.lock() {
            known.insert(id.to_string(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_what_was_learned() {
        let known: PerCar<bool> = PerCar::default();
        let clone = known.clone();
        assert_eq!(known.get("VIN1"), None);
        clone.set("VIN1", false);
        assert_eq!(known.get("VIN1"), Some(false));
        known.set("VIN1", true);
        assert_eq!(clone.get("VIN1"), Some(true));
    }
}
