//! The protocol's canonical metadata serialisation (protocol.md, "Metadata
//! serialization"): tag-length-value items in ascending tag order, then `0xFF`. Signers
//! and verifiers hash or MAC these bytes, so one byte out of place fails authentication.

use super::proto::signatures::Tag;

/// Metadata items being collected; [`Metadata::bytes`] serialises them.
#[derive(Clone, Debug, Default)]
pub struct Metadata {
    items: Vec<(u8, Vec<u8>)>,
}

impl Metadata {
    /// No items yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `tag` with a raw value (at most 255 bytes: the length is one byte).
    pub fn add(mut self, tag: Tag, value: &[u8]) -> Self {
        assert!(value.len() <= 255, "metadata values are at most 255 bytes");
        self.items.push((tag as u8, value.to_vec()));
        self
    }

    /// Adds `tag` with a one-byte value (signature types, domains).
    pub fn add_byte(self, tag: Tag, value: u8) -> Self {
        self.add(tag, &[value])
    }

    /// Adds `tag` with a big-endian four-byte integer.
    pub fn add_u32(self, tag: Tag, value: u32) -> Self {
        self.add(tag, &value.to_be_bytes())
    }

    /// The serialisation: items sorted by tag, each `tag || len || value`, then `0xFF`.
    pub fn bytes(&self) -> Vec<u8> {
        let mut items: Vec<&(u8, Vec<u8>)> = self.items.iter().collect();
        items.sort_by_key(|(tag, _)| *tag);
        let mut out = Vec::with_capacity(items.iter().map(|(_, v)| v.len() + 2).sum::<usize>() + 1);
        for (tag, value) in items {
            out.push(*tag);
            out.push(value.len() as u8);
            out.extend_from_slice(value);
        }
        out.push(Tag::End as u8);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        ::hex::decode(s).unwrap()
    }

    #[test]
    fn the_specifications_examples_byte_for_byte() {
        // "SERIALIZE({COUNTER: 100, VIN: "abc"})", given out of order.
        let m = Metadata::new()
            .add_u32(Tag::Counter, 100)
            .add(Tag::Personalization, b"abc");
        assert_eq!(m.bytes(), hex("0203616263050400000064ff"));
        // The session-info authentication metadata of the handshake example.
        let m = Metadata::new()
            .add_byte(Tag::SignatureType, 6)
            .add(Tag::Personalization, b"5YJ30123456789ABC")
            .add(Tag::Challenge, &hex("1588d5a30eabc6f8fc9a951b11f6fd11"));
        assert_eq!(
            m.bytes(),
            hex(
                "000106021135594a333031323334353637383941424306101588d5a30eabc6f8fc9a951b11f6fd11ff"
            )
        );
        // The AES-GCM command example's metadata.
        let m = Metadata::new()
            .add_byte(Tag::SignatureType, 5)
            .add_byte(Tag::Domain, 3)
            .add(Tag::Personalization, b"5YJ30123456789ABC")
            .add(Tag::Epoch, &hex("4c463f9cc0d3d26906e982ed224adde6"))
            .add_u32(Tag::ExpiresAt, 2655)
            .add_u32(Tag::Counter, 7);
        assert_eq!(
            m.bytes(),
            hex(
                "000105010103021135594a333031323334353637383941424303104c463f9cc0d3d26906e982ed224adde6040400000a5f050400000007ff"
            )
        );
    }
}
