//! Fleet API regions: which base URL a 421 answer names for the account, and whether
//! keyway may follow it (Tesla's own HTTPS hosts, or the configured host — never
//! anywhere else with the account's token). The adapter keeps what it learns per
//! account ([`crate::TeslaAdapter`]).

use keyway_adapter::OemError;

/// The base URL a 421 names ("user out of region, use base URL: https://…, see …").
pub fn region_of(e: &OemError) -> Option<String> {
    let OemError::Upstream {
        status: 421,
        detail,
        ..
    } = e
    else {
        return None;
    };
    let rest = &detail[detail.find("base URL")? + "base URL".len()..];
    let url = rest
        .split_whitespace()
        .find(|w| w.starts_with("https://") || w.starts_with("http://"))?;
    Some(
        url.trim_end_matches([',', '.', ';'])
            .trim_end_matches('/')
            .to_string(),
    )
}

/// Whether keyway may follow a 421 to `url`: one of Tesla's own hosts over HTTPS on
/// port 443, or exactly the origin (scheme, host and port) keyway is configured for or
/// told to allow (`allowed`: a test's second region) — never another port or plain HTTP
/// of a configured host, and never anywhere else with the account's token.
pub fn acceptable_region(configured: &str, allowed: &[String], url: &str) -> bool {
    // A base URL is scheme, host, port and perhaps a path: nothing else may ride along.
    if !url
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".:/-_".contains(c))
    {
        return false;
    }
    let Some(target) = origin(url) else {
        return false;
    };
    let (scheme, host, port) = (&target.0, &target.1, target.2);
    let tesla = scheme == "https"
        && port == 443
        && (host.ends_with(".tesla.com") || host.ends_with(".tesla.cn"));
    tesla
        || std::iter::once(configured)
            .chain(allowed.iter().map(String::as_str))
            .any(|u| origin(u).as_ref() == Some(&target))
}

/// The origin of a URL — scheme, host (a plain name), port (the scheme's default when
/// none is given) — if it has a usable one: no user info, query or fragment that could
/// hide another host behind the one checked.
fn origin(u: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = u.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, default),
    };
    let host = host.to_ascii_lowercase();
    let plain = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    plain.then_some((scheme, host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyway_adapter::Delivered;

    #[test]
    fn a_421_names_the_region_and_only_tesla_or_the_configured_host_is_followed() {
        let resp = http::Response::builder()
            .status(421)
            .body(bytes::Bytes::from(
                std::fs::read(format!(
                    "{}/../../fixtures/tesla/error_wrong_region_421.json",
                    env!("CARGO_MANIFEST_DIR")
                ))
                .unwrap(),
            ))
            .unwrap();
        let e = crate::errors::classify(&resp, true);
        assert_eq!(e.delivered(), Delivered::No, "Tesla did not act");
        let url = region_of(&e).unwrap();
        assert_eq!(url, "https://fleet-api.prd.eu.vn.cloud.tesla.com");
        let na = "https://fleet-api.prd.na.vn.cloud.tesla.com";
        assert!(acceptable_region(na, &[], &url));
        assert!(acceptable_region(na, &[], &format!("{url}:443")));
        assert!(!acceptable_region(na, &[], "https://attacker.example"));
        assert!(!acceptable_region(
            na,
            &[],
            "http://fleet-api.prd.eu.vn.cloud.tesla.com"
        ));
        assert!(!acceptable_region(
            na,
            &[],
            "https://fleet-api.prd.eu.vn.cloud.tesla.com:8443"
        ));
        assert!(!acceptable_region(
            na,
            &[],
            "https://tesla.com.attacker.example"
        ));
        for sneaky in [
            "https://attacker.example#.tesla.com",
            "https://attacker.example?.tesla.com",
            "https://x.tesla.com@attacker.example",
        ] {
            assert!(!acceptable_region(na, &[], sneaky), "{sneaky}");
        }
        for sneaky in [
            "http://127.0.0.1:9002@attacker.example/",
            "http://127.0.0.1#@attacker.example",
        ] {
            assert!(
                !acceptable_region("http://127.0.0.1:9001", &[], sneaky),
                "{sneaky}"
            );
        }
        // The configured host on another port, or over plain HTTP, is not followed
        // (the owner's token went there before); an allowed origin is.
        let configured = "https://fleet.internal:8443";
        for other in [
            "https://fleet.internal:9443",
            "http://fleet.internal:8443",
            "https://fleet.internal",
        ] {
            assert!(!acceptable_region(configured, &[], other), "{other}");
        }
        assert!(acceptable_region(
            configured,
            &[],
            "https://fleet.internal:8443/"
        ));
        let allowed = ["http://127.0.0.1:9002".to_string()];
        assert!(acceptable_region(
            "http://127.0.0.1:9001",
            &allowed,
            "http://127.0.0.1:9002"
        ));
        assert!(!acceptable_region(
            "http://127.0.0.1:9001",
            &[],
            "http://127.0.0.1:9002"
        ));
        assert_eq!(region_of(&OemError::NotFound), None);
    }
}
