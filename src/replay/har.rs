//! `keyway replay --har`: a recorded exchange (HAR 1.2, as browsers, proxies and
//! mitmproxy export it) replayed through the adapters. Each request is recognised by
//! the adapters' route tables (or as an OEM's OAuth token endpoint); the first request
//! of each operation starts it — a request that supports the operation of the request
//! after it belongs to that exchange — and the operation's requests are answered by the
//! recorded answers of the same routes that follow, in order (fixtures fill any gap).
//! Requests no adapter makes are listed as skipped. The results come out in order.

use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::stand_in::{Captures, Key};
use super::{Captured, Operation, ReplayError, Replayed};
use keyway_adapter::{AdapterInfo, Route};

#[derive(Deserialize)]
struct Har {
    log: Log,
}

#[derive(Deserialize)]
struct Log {
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    request: Request,
    response: Response,
}

#[derive(Deserialize)]
struct Request {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<Header>,
}

#[derive(Deserialize)]
struct Response {
    status: u16,
    #[serde(default)]
    headers: Vec<Header>,
    #[serde(default)]
    content: Content,
}

#[derive(Deserialize, Default)]
struct Content {
    text: Option<String>,
    encoding: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    name: String,
    value: String,
}

/// One recorded request and its answer.
struct Recorded {
    method: String,
    /// The whole URL, as recorded.
    url: String,
    /// Path and query.
    path: String,
    request_headers: Vec<(String, String)>,
    answer: Captured,
}

/// What a recorded request is to keyway.
#[derive(Clone, Copy)]
enum Kind {
    Route(&'static AdapterInfo, &'static Route),
    Token(&'static AdapterInfo),
}

impl Kind {
    fn info(self) -> &'static AdapterInfo {
        match self {
            Kind::Route(i, _) | Kind::Token(i) => i,
        }
    }
}

/// Headers that describe the recording's transfer, not the answer keyway reads.
fn transfer_header(name: &str) -> bool {
    name.starts_with(':')
        || [
            "content-encoding",
            "content-length",
            "transfer-encoding",
            "connection",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

fn read(bytes: &[u8]) -> Result<Vec<Recorded>, ReplayError> {
    let har: Har = serde_json::from_slice(bytes)
        .map_err(|e| ReplayError::Invalid(format!("not a HAR file: {e}")))?;
    let mut out = Vec::new();
    for (i, e) in har.log.entries.into_iter().enumerate() {
        let uri: http::Uri = e
            .request
            .url
            .parse()
            .map_err(|err| ReplayError::Invalid(format!("entry {}: url: {err}", i + 1)))?;
        let path = uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string());
        let text = e.response.content.text.unwrap_or_default();
        let body = if e.response.content.encoding.as_deref() == Some("base64") {
            base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|err| ReplayError::Invalid(format!("entry {}: body: {err}", i + 1)))?
        } else {
            text.into_bytes()
        };
        let headers = e
            .response
            .headers
            .into_iter()
            .filter(|h| !transfer_header(&h.name))
            .filter(|h| {
                http::HeaderName::try_from(h.name.as_str()).is_ok()
                    && http::HeaderValue::try_from(h.value.as_str()).is_ok()
            })
            .map(|h| (h.name, h.value))
            .collect();
        // HAR writes 0 for a request that got no answer: a lost answer.
        let status = if e.response.status == 0 {
            504
        } else {
            e.response.status
        };
        out.push(Recorded {
            url: e.request.url.clone(),
            method: e.request.method.to_ascii_uppercase(),
            path,
            request_headers: e
                .request
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
            answer: Captured::new(
                status,
                headers,
                Bytes::from(body),
                format!("HAR entry {}", i + 1),
            )?,
        });
    }
    Ok(out)
}

fn kind(r: &Recorded, oem: Option<&str>) -> Option<Kind> {
    crate::registry::ADAPTERS
        .iter()
        .map(|k| k.info)
        .filter(|i| oem.is_none_or(|o| o == i.oem))
        .find_map(|i| {
            if let Some(route) = i.exchanges.route(&r.method, &r.path) {
                return Some(Kind::Route(i, route));
            }
            let token = r.method == "POST" && r.path.split('?').next() == Some(i.oauth.token_path);
            token.then_some(Kind::Token(i))
        })
}

/// The vehicle a request names: its route's first `{…}` segment, or a header naming a
/// VIN (BMW's `bmw-vin`).
fn vehicle_of(r: &Recorded, kind: Kind) -> Option<String> {
    if let Kind::Route(_, route) = kind {
        let path = r.path.split('?').next().unwrap_or_default();
        let pattern = route.path.split('?').next().unwrap_or_default();
        let named = pattern
            .trim_matches('/')
            .split('/')
            .zip(path.trim_matches('/').split('/'))
            .find(|(w, _)| w.starts_with('{'))
            .map(|(_, g)| g.to_string());
        if named.is_some() {
            return named;
        }
    }
    r.request_headers
        .iter()
        .find(|(n, _)| n.to_ascii_lowercase().ends_with("vin"))
        .map(|(_, v)| v.clone())
}

/// Replays every recognised operation of the HAR file `bytes` (only `oem`'s, if
/// given); one JSON value per operation or skipped request, in order.
pub async fn replay(bytes: &[u8], oem: Option<&str>) -> Result<Vec<Value>, ReplayError> {
    if let Some(o) = oem
        && crate::registry::info(o).is_none()
    {
        return Err(ReplayError::UnknownOem(
            o.to_string(),
            crate::registry::known().join(", "),
        ));
    }
    let recorded = read(bytes)?;
    let kinds: Vec<Option<Kind>> = recorded.iter().map(|r| kind(r, oem)).collect();
    let mut used = vec![false; recorded.len()];
    let mut out = Vec::new();
    for i in 0..recorded.len() {
        if used[i] {
            continue;
        }
        used[i] = true;
        let r = &recorded[i];
        let request = format!("{} {}", r.method, r.path);
        let Some(k) = kinds[i] else {
            out.push(json!({"entry": i + 1, "request": request, "url": r.url,
                "skipped": "no adapter makes this request"}));
            continue;
        };
        let oem = k.info().oem;
        // The next recognised request of this OEM: when this one supports its operation
        // (Volvo's accessibility check before a lock), both are one exchange.
        let next_op = (i + 1..recorded.len())
            .filter(|&j| !used[j])
            .find_map(|j| match kinds[j] {
                Some(Kind::Route(info, route)) if info.oem == oem => Some(route.own.first()),
                _ => None,
            })
            .flatten();
        let ops: Vec<&'static str> = match k {
            Kind::Token(_) => vec!["token"],
            Kind::Route(_, route) if next_op.is_some_and(|n| route.supports.contains(n)) => {
                next_op.into_iter().copied().collect()
            }
            Kind::Route(_, route) if !route.own.is_empty() => route.own.to_vec(),
            Kind::Route(_, route) => route.supports.iter().take(1).copied().collect(),
        };
        // The car: named by this request or the next one of the same OEM that names one.
        let vehicle = (i..recorded.len())
            .filter_map(|j| kinds[j].filter(|kj| kj.info().oem == oem).map(|kj| (j, kj)))
            .find_map(|(j, kj)| vehicle_of(&recorded[j], kj));
        for name in ops {
            let Some(op) = Operation::parse(name) else {
                continue;
            };
            // This request and the later unused ones of the same OEM answer the operation.
            let pool: Vec<usize> = (i..recorded.len())
                .filter(|&j| j == i || !used[j])
                .filter(|&j| kinds[j].is_some_and(|kj| kj.info().oem == oem))
                .collect();
            let keyed = pool
                .iter()
                .filter_map(|&j| match kinds[j] {
                    Some(Kind::Route(_, route)) => {
                        Some((Key::Route(route), recorded[j].answer.clone()))
                    }
                    _ => None,
                })
                .collect();
            let captures = match k {
                Kind::Token(_) => Captures {
                    own: Some(r.answer.clone()),
                    ..Captures::default()
                },
                Kind::Route(..) => Captures {
                    keyed,
                    ..Captures::default()
                },
            };
            let replay = super::replay(oem, op, captures, vehicle.as_deref()).await?;
            let keyed_pool: Vec<usize> = pool
                .iter()
                .copied()
                .filter(|&j| matches!(kinds[j], Some(Kind::Route(..))))
                .collect();
            for u in &replay.used_keyed {
                if let Some(&j) = keyed_pool.get(*u) {
                    used[j] = true;
                }
            }
            let mut v = json!({"entry": i + 1, "request": request, "oem": oem,
                "operation": name, "steps": replay.steps});
            match replay.outcome {
                Replayed::Parsed(value) => v["result"] = value,
                Replayed::Error(problem) => v["problem"] = problem,
            }
            out.push(v);
        }
    }
    Ok(out)
}
