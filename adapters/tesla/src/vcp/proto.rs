//! The protocol's messages as prost types, generated at build time from `proto/`
//! (keyway's copy of Tesla's definitions; see `build.rs`).

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `UniversalMessage`: the routable envelope, destinations, faults, flags.
pub mod universal_message {
    include!(concat!(env!("OUT_DIR"), "/universal_message.rs"));
}

/// `Signatures`: signature data, metadata tags, session info.
pub mod signatures {
    include!(concat!(env!("OUT_DIR"), "/signatures.rs"));
}

/// `VCSEC`: the vehicle security domain's RKE actions and answers.
pub mod vcsec {
    include!(concat!(env!("OUT_DIR"), "/vcsec.rs"));
}
