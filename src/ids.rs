//! Opaque, unguessable resource ids: a type prefix and 128 random bits in lowercase
//! base32 (`cmd_3x7…`), so ids say what they name and leak nothing about order or count.

use rand::RngCore;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A new id like `veh_kq3…` (26 base32 characters after the prefix).
pub fn new(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
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
    }
}
