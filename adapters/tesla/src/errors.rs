//! How Tesla's error answers map to keyway's taxonomy ([`classify`]): shared by the
//! REST paths, the signed-command path and region discovery.

use bytes::Bytes;
use http::Response;
use keyway_adapter::error::{parse_retry_after, wait_in_text};
use keyway_adapter::http::body_excerpt;
use keyway_adapter::{Delivered, OemError};
use serde::Deserialize;

/// Tesla's error body (`{"error": "…"}`).
#[derive(Deserialize)]
struct ErrorBody {
    error: Option<String>,
}

/// Maps a non-success answer. `command` marks a lock/unlock (a 5xx then leaves the
/// outcome unknown).
pub fn classify(resp: &Response<Bytes>, command: bool) -> OemError {
    let status = resp.status();
    let detail = serde_json::from_slice::<ErrorBody>(resp.body())
        .ok()
        .and_then(|b| b.error)
        .unwrap_or_else(|| body_excerpt(resp));
    match status.as_u16() {
        408 => OemError::Asleep,
        421 => OemError::Upstream {
            status: 421,
            detail: format!("wrong region: {detail}"),
            delivered: Delivered::No,
        },
        // The wait may come in the header or only in the body ("Retry in N seconds").
        429 => OemError::RateLimited {
            retry_after: parse_retry_after(resp.headers().get(http::header::RETRY_AFTER))
                .or_else(|| wait_in_text(&detail))
                .or_else(|| wait_in_text(&body_excerpt(resp))),
        },
        // 540: Tesla's "vehicle did not respond" family; treat as a server error.
        s => OemError::from_status(s, detail, command),
    }
}
