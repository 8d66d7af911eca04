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

/// Whether keyway may follow a 421 to `url`: Tesla's own hosts over HTTPS, or the host
/// keyway is configured for (a test's second port) — never anywhere else with the token.
pub fn acceptable_region(configured: &str, url: &str) -> bool {
    // The host of a URL, if it is a plain name: no user info, query or fragment that
    // could hide another host behind the one checked.
    let host = |u: &str| -> Option<String> {
        let rest = u.split_once("://").map_or(u, |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return None;
        }
        let h = authority
            .split(':')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let plain = !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        plain.then_some(h)
    };
    // A base URL is scheme, host, port and perhaps a path: nothing else may ride along.
    if !url
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".:/-_".contains(c))
    {
        return false;
    }
    let Some(h) = host(url) else {
        return false;
    };
    let tesla =
        url.starts_with("https://") && (h.ends_with(".tesla.com") || h.ends_with(".tesla.cn"));
    tesla || host(configured).is_some_and(|c| c == h)
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
        let e = crate::adapter::classify(&resp, true);
        assert_eq!(e.delivered(), Delivered::No, "Tesla did not act");
        let url = region_of(&e).unwrap();
        assert_eq!(url, "https://fleet-api.prd.eu.vn.cloud.tesla.com");
        let na = "https://fleet-api.prd.na.vn.cloud.tesla.com";
        assert!(acceptable_region(na, &url));
        assert!(!acceptable_region(na, "https://attacker.example"));
        assert!(!acceptable_region(
            na,
            "http://fleet-api.prd.eu.vn.cloud.tesla.com"
        ));
        assert!(!acceptable_region(na, "https://tesla.com.attacker.example"));
        for sneaky in [
            "https://attacker.example#.tesla.com",
            "https://attacker.example?.tesla.com",
            "https://x.tesla.com@attacker.example",
        ] {
            assert!(!acceptable_region(na, sneaky), "{sneaky}");
        }
        for sneaky in [
            "http://127.0.0.1:9002@attacker.example/",
            "http://127.0.0.1#@attacker.example",
        ] {
            assert!(
                !acceptable_region("http://127.0.0.1:9001", sneaky),
                "{sneaky}"
            );
        }
        assert!(acceptable_region(
            "http://127.0.0.1:9001",
            "http://127.0.0.1:9002"
        ));
        assert_eq!(region_of(&OemError::NotFound), None);
    }
}
