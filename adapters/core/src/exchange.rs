//! The requests an adapter makes, named, for replaying captured exchanges
//! (`keyway replay`): each [`Route`] is one kind of request (method and path pattern),
//! the operation it belongs to, and the answer it gets when nobody captured one — a
//! fixture in the OEM's real structure from `fixtures/<oem>/`. The conformance suite
//! checks that every request an adapter makes against its mock has a route here, so a
//! table cannot fall behind its adapter.

/// One kind of request an adapter makes.
#[derive(Clone, Copy)]
pub struct Route {
    /// What it is, in words ("vehicle details").
    pub name: &'static str,
    /// Its HTTP method.
    pub method: &'static str,
    /// Its path; a `{…}` segment matches any one segment. The query is not compared.
    pub path: &'static str,
    /// The replay operations (`vehicles`, `security`, `command`, …) whose own request
    /// it is: the one a capture answers. A request of a recorded exchange (HAR) starts
    /// the first.
    pub own: &'static [&'static str],
    /// The operations it supports without being their own request (a list before
    /// details, a status check before a command).
    pub supports: &'static [&'static str],
    /// The fixture answering it when no capture does: its file under `fixtures/<oem>/`.
    pub fixture: &'static str,
    /// That fixture's bytes.
    pub body: &'static str,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.method, self.path, self.name)
    }
}

impl Route {
    /// Whether a request with `method` to `path` (with its query, if any) is one of
    /// these.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        request_matches(self.method, self.path, method, path)
    }
}

/// Whether a request with `method` to `path` (with its query, if any) matches a
/// pattern: the method (`*` for any) and a path whose `{…}` or `*` segments match any
/// one non-empty segment; a query in the pattern must be part of the request's.
pub fn request_matches(method_pattern: &str, path_pattern: &str, method: &str, path: &str) -> bool {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let (pattern, wanted) = path_pattern.split_once('?').unwrap_or((path_pattern, ""));
    if !(method_pattern == "*" || method_pattern.eq_ignore_ascii_case(method))
        || !wanted
            .split('&')
            .all(|w| w.is_empty() || query.split('&').any(|q| q == w))
    {
        return false;
    }
    let mut want = pattern.trim_matches('/').split('/');
    let mut got = path.trim_matches('/').split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w == "*" || (w.starts_with('{') && w.ends_with('}')) => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// An adapter's routes and the vehicle its fixtures describe.
#[derive(Clone, Copy, Debug)]
pub struct Exchanges {
    /// The OEM's id of the vehicle the fixtures describe (the replayed car).
    pub vehicle: &'static str,
    /// Every kind of request the adapter makes.
    pub routes: &'static [Route],
}

impl Exchanges {
    /// No routes (an adapter that is not replayed, e.g. a test's).
    pub const NONE: Exchanges = Exchanges {
        vehicle: "",
        routes: &[],
    };

    /// The route a request with `method` to `path` is, if the adapter makes it.
    pub fn route(&self, method: &str, path: &str) -> Option<&'static Route> {
        self.routes.iter().find(|r| r.matches(method, path))
    }
}

/// A [`Route`] whose fixture is `fixtures/<oem>/<file>` of this repository, read at
/// build time: `route!("volvo", "doors.json", ["security"], [], "doors and central
/// lock", GET "/connected-vehicle/v2/vehicles/{vin}/doors")` — the operations it is the
/// own request of, then those it supports.
#[macro_export]
macro_rules! route {
    ($oem:literal, $file:literal, [$($own:literal),*], [$($sup:literal),*], $name:literal, $method:ident $path:literal) => {
        $crate::Route {
            name: $name,
            method: stringify!($method),
            path: $path,
            own: &[$($own),*],
            supports: &[$($sup),*],
            fixture: $file,
            body: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../fixtures/",
                $oem,
                "/",
                $file
            )),
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Route = Route {
        name: "doors",
        method: "GET",
        path: "/connected-vehicle/v2/vehicles/{vin}/doors",
        own: &["security"],
        supports: &[],
        fixture: "doors.json",
        body: "{}",
    };

    #[test]
    fn paths_match_segment_by_segment() {
        assert!(R.matches("GET", "/connected-vehicle/v2/vehicles/YV1/doors"));
        assert!(R.matches("get", "/connected-vehicle/v2/vehicles/YV1/doors?x=1"));
        assert!(!R.matches("POST", "/connected-vehicle/v2/vehicles/YV1/doors"));
        assert!(!R.matches("GET", "/connected-vehicle/v2/vehicles//doors"));
        assert!(!R.matches("GET", "/connected-vehicle/v2/vehicles/YV1"));
        assert!(!R.matches("GET", "/connected-vehicle/v2/vehicles/YV1/doors/x"));
        assert!(!R.matches("GET", "/connected-vehicle/v2/vehicles/YV1/windows"));
        let q = Route {
            path: "/api/1/vehicles/{id}/vehicle_data?endpoints=location_data",
            ..R
        };
        assert!(q.matches(
            "GET",
            "/api/1/vehicles/1/vehicle_data?endpoints=location_data"
        ));
        assert!(q.matches(
            "GET",
            "/api/1/vehicles/1/vehicle_data?a=b&endpoints=location_data"
        ));
        assert!(!q.matches(
            "GET",
            "/api/1/vehicles/1/vehicle_data?endpoints=vehicle_state"
        ));
        assert!(!q.matches("GET", "/api/1/vehicles/1/vehicle_data"));
    }
}
