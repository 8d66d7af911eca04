//! Opaque, unguessable resource ids: a type prefix and 128 random bits in lowercase
//! base32 (`cmd_3x7…`), so ids say what they name and leak nothing about order or count;
//! and the id types records and services pass them as ([`VehicleId`], [`CommandId`],
//! [`TenantId`], [`OemId`]), so a vehicle's id cannot be handed where a command's or a
//! tenant's is wanted. Each reads as a `&str` (it is one on the wire and in the store).

use std::cell::RefCell;

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A new id like `veh_kq3…` (26 base32 characters after the prefix), from the
/// operating system's cryptographic generator (through `rand`'s thread generator).
pub fn new(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    encode(prefix, bytes)
}

/// A request id like `req_kq3…`: unique but not a secret (it names a request in logs
/// and answers, and grants nothing), so it comes from a fast per-thread generator
/// seeded once from the operating system; every request makes one.
pub fn request() -> String {
    thread_local! {
        static FAST: RefCell<SmallRng> = RefCell::new(SmallRng::from_os_rng());
    }
    encode("req", FAST.with(|r| r.borrow_mut().random()))
}

/// `prefix_` and the 128 bits in base32, most significant first (the last character
/// holds the final 3 bits, padded with zeros).
fn encode(prefix: &str, bytes: [u8; 16]) -> String {
    let v = u128::from_be_bytes(bytes);
    let mut chars = [0u8; 26];
    for (i, c) in chars.iter_mut().enumerate() {
        let five = if i < 25 {
            (v >> (123 - 5 * i)) & 31
        } else {
            (v & 7) << 2
        };
        *c = ALPHABET[five as usize];
    }
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    out.push_str(std::str::from_utf8(&chars).unwrap_or_default());
    out
}

/// An id type: a `String` that says what it names. It reads as a `&str`, compares with
/// strings, and (de)serializes as one.
macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(
            Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    )*};
}

id_type! {
    /// A vehicle's id (`veh_…`).
    VehicleId;
    /// A command's id (`cmd_…`).
    CommandId;
    /// A tenant (the token's `tenant`, or its subject's own).
    TenantId;
    /// An OEM as keyway's registry names it (`tesla`, `bmw`, …).
    OemId;
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_prefixed_and_distinct() {
        let a = super::new("cmd");
        let b = super::new("cmd");
        assert!(a.starts_with("cmd_"));
        assert_eq!(a.len(), 4 + 26);
        assert_ne!(a, b);
        let r = super::request();
        assert!(r.starts_with("req_") && r.len() == 4 + 26);
        assert_ne!(r, super::request());
    }

    /// The first encoder, bit by bit: ids keep the same alphabet and bit order.
    fn bitwise(bytes: [u8; 16]) -> String {
        let mut out = String::from("x_");
        let (mut acc, mut bits) = (0u32, 0);
        for b in bytes {
            acc = (acc << 8) | u32::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(super::ALPHABET[((acc >> bits) & 31) as usize] as char);
            }
        }
        out.push(super::ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
        out
    }

    proptest::proptest! {
        #[test]
        fn the_encoding_is_base32_of_the_bits_in_order(bytes: [u8; 16]) {
            proptest::prop_assert_eq!(super::encode("x", bytes), bitwise(bytes));
        }
    }
}
