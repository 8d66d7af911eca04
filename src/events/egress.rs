//! The webhook egress guard: keyway POSTs events to URLs its callers choose, so without
//! a guard any `webhooks:write` caller could make keyway talk to its own control
//! planes, the mock OEMs' control APIs, cloud metadata services or anything else on the
//! inside (SSRF), and read the answers' status as a port scanner.
//!
//! - **Refused by default**: loopback, private (RFC 1918, IPv6 unique-local),
//!   link-local, CGNAT, multicast, broadcast, unspecified, documentation, benchmarking
//!   and reserved ranges, and the IPv4-mapped, IPv4-compatible, NAT64, 6to4 and Teredo
//!   forms that carry an IPv4 address inside an IPv6 one — and always keyway's own
//!   listen address.
//! - **Checked twice**: at registration (every address the host resolves to), and at
//!   every delivery against the address the connection is actually made to: the
//!   [`GuardedConnector`] resolves the name itself, connects only to an allowed
//!   address, and checks the peer once more (a DNS answer that changes between the two
//!   — rebinding — is caught at delivery).
//! - **No redirects** are followed (hyper never does; a 3xx is a failed delivery).
//! - **Exceptions** only from configuration: `events.webhook_allow`, CIDRs or host
//!   names (the demo allows its own loopback receiver).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use tokio::net::TcpStream;

/// A delivery or registration that the guard refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The address is in a range webhooks may not reach.
    #[error("{0} addresses may not receive webhooks")]
    Range(&'static str),
    /// keyway's own listen address.
    #[error("keyway's own address may not receive webhooks")]
    Own,
    /// The host name resolved to no address.
    #[error("the host name does not resolve")]
    Unresolved,
    /// Not an absolute http(s) URL with a host ([`WEBHOOK_URL_PATTERN`]).
    #[error(
        "the URL must be an absolute http:// or https:// URL: a host name or IPv4 address, \
         an optional port, and a path of URL characters"
    )]
    BadUrl,
}

/// The webhook URLs keyway takes, as the API document states them (`NewWebhook.url`):
/// `http` or `https`, a host name or IPv4 address, a port up to 65535, and a path and
/// query of RFC 3986 characters (no fragment). Checked here, then parsed, so the
/// document and the server agree on every string.
pub const WEBHOOK_URL_PATTERN: &str = r"^https?://[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?){0,15}(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(?:[/?][A-Za-z0-9._~!$&'()*+,;=:@/?%-]*)?$";

static WEBHOOK_URL: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(WEBHOOK_URL_PATTERN).unwrap_or_else(|_| regex::Regex::new("$^").unwrap())
});

/// Ranges refused by default, each with the name a refusal gives.
static FORBIDDEN: LazyLock<Vec<(IpNet, &'static str)>> = LazyLock::new(|| {
    [
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared (CGNAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("100::/64", "discard"),
        ("64:ff9b:1::/48", "local NAT64"),
        ("2001::/32", "Teredo"),
        ("2001:db8::/32", "documentation"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    ]
    .into_iter()
    .filter_map(|(net, why)| net.parse().ok().map(|n| (n, why)))
    .collect()
});

/// The IPv4 address an IPv6 one carries (mapped, compatible, NAT64, 6to4), if any.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let last = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible; ::, ::1 are handled above).
        // ::ffff:0:a.b.c.d (translated, RFC 2765's ::ffff:0:0/96) too.
        [0, 0, 0, 0, 0, 0xffff, hi, lo]
        | [0, 0, 0, 0, 0, 0, hi, lo]
        | [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some(last(hi, lo)),
        // 64:ff9b::a.b.c.d (NAT64 well-known prefix).
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(last(hi, lo)),
        // 2002:aabb:ccdd::/48 (6to4).
        [0x2002, hi, lo, ..] => Some(last(hi, lo)),
        _ => None,
    }
}

/// Why `ip` is refused by default, if it is.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    if let Some((_, why)) = FORBIDDEN.iter().find(|(net, _)| net.contains(&ip)) {
        return Some(why);
    }
    match ip {
        IpAddr::V4(v4) if v4.is_broadcast() => Some("broadcast"),
        IpAddr::V6(v6) => embedded_v4(v6).and_then(|v4| forbidden(IpAddr::V4(v4))),
        IpAddr::V4(_) => None,
    }
}

/// The policy: what is refused, and the configured exceptions.
#[derive(Clone, Debug)]
pub struct Egress {
    nets: Vec<IpNet>,
    hosts: Vec<String>,
    own: SocketAddr,
}

impl Egress {
    /// A guard with the exceptions in `allow` (CIDRs, single addresses or host names),
    /// for a gateway listening on `own`.
    pub fn new(allow: &[String], own: SocketAddr) -> Result<Self, String> {
        let (mut nets, mut hosts) = (Vec::new(), Vec::new());
        for entry in allow {
            let entry = entry.trim();
            if let Ok(net) = entry.parse::<IpNet>() {
                nets.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                nets.push(IpNet::from(ip));
            } else if !entry.is_empty()
                && entry
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "{entry:?} is neither a CIDR, an address nor a host name"
                ));
            }
        }
        Ok(Self { nets, hosts, own })
    }

    fn own(&self, addr: SocketAddr) -> bool {
        let own_ip = self.own.ip();
        addr.port() == self.own.port()
            && (addr.ip() == own_ip
                || own_ip.is_unspecified()
                || (own_ip.is_loopback() && addr.ip().is_loopback()))
    }

    /// Whether keyway may connect to `addr` (reached through `host`).
    pub fn check(&self, host: &str, addr: SocketAddr) -> Result<(), Refused> {
        if self.own(addr) {
            return Err(Refused::Own);
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if self.hosts.contains(&host) || self.nets.iter().any(|n| n.contains(&addr.ip())) {
            return Ok(());
        }
        match forbidden(addr.ip()) {
            Some(why) => Err(Refused::Range(why)),
            None => Ok(()),
        }
    }

    /// The addresses keyway may connect to for `host:port`: all of them allowed, or a
    /// refusal naming the first that is not (a name resolving to an internal address is
    /// refused, not quietly narrowed).
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|_| Refused::Unresolved)?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(Refused::Unresolved);
        }
        for a in &addrs {
            self.check(bare, *a)?;
        }
        Ok(addrs)
    }

    /// Checks a webhook URL at registration: well formed, and not naming (or
    /// resolving to) an address keyway may not reach. A name that does not resolve now
    /// (or not within a second) is accepted: DNS may be down for a moment or the
    /// receiver not published yet, and every delivery resolves and checks again (its
    /// log says why one failed).
    pub async fn check_url(&self, url: &str) -> Result<(), Refused> {
        if !WEBHOOK_URL.is_match(url) {
            return Err(Refused::BadUrl);
        }
        let uri: http::Uri = url.parse().map_err(|_| Refused::BadUrl)?;
        let (host, port) = target(&uri)?;
        match tokio::time::timeout(Duration::from_secs(1), self.resolve(host, port)).await {
            Ok(Ok(_)) | Ok(Err(Refused::Unresolved)) | Err(_) => Ok(()),
            Ok(Err(refused)) => Err(refused),
        }
    }
}

/// The host and port a URL names.
fn target(uri: &http::Uri) -> Result<(&str, u16), Refused> {
    let default = match uri.scheme_str() {
        Some("https") => 443,
        Some("http") => 80,
        _ => return Err(Refused::BadUrl),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or(Refused::BadUrl)?;
    Ok((host, uri.port_u16().unwrap_or(default)))
}

/// A connector for webhook deliveries that resolves, checks and connects itself, so
/// the address checked is the address connected to.
#[derive(Clone)]
pub struct GuardedConnector {
    egress: Arc<Egress>,
    connect_timeout: Duration,
}

impl GuardedConnector {
    /// A connector enforcing `egress`.
    pub fn new(egress: Arc<Egress>, connect_timeout: Duration) -> Self {
        Self {
            egress,
            connect_timeout,
        }
    }
}

/// Why a guarded connection was not made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The guard refused the address.
    #[error("blocked: {0}")]
    Blocked(#[from] Refused),
    /// The connection could not be made.
    #[error("connect failed")]
    Io(#[source] std::io::Error),
    /// No connection within the connect timeout.
    #[error("connect timed out")]
    Timeout,
}

impl tower::Service<http::Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let (egress, timeout) = (self.egress.clone(), self.connect_timeout);
        Box::pin(async move {
            let (host, port) = target(&uri)?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let mut last = ConnectError::Blocked(Refused::Unresolved);
            for addr in egress.resolve(&host, port).await? {
                match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                    Ok(Ok(stream)) => {
                        // The peer the socket really reached.
                        let peer = stream.peer_addr().map_err(ConnectError::Io)?;
                        egress.check(&host, peer)?;
                        let _ = stream.set_nodelay(true);
                        return Ok(TokioIo::new(stream));
                    }
                    Ok(Err(e)) => last = ConnectError::Io(e),
                    Err(_) => last = ConnectError::Timeout,
                }
            }
            Err(last)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(allow: &[&str]) -> Egress {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        Egress::new(&allow, "127.0.0.1:8080".parse().unwrap()).unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        SocketAddr::new(s.parse().unwrap(), 443)
    }

    #[test]
    fn internal_ranges_and_their_ipv6_disguises_are_refused() {
        let g = guard(&[]);
        for ip in [
            "127.0.0.1",
            "127.0.0.2",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0:127.0.0.1",
            "::ffff:0:a9fe:a9fe",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "2002:7f00:1::1",
            "2002:c0a8:101::",
            "2001:0:4136:e378::1",
        ] {
            assert!(g.check("h", addr(ip)).is_err(), "{ip} was allowed");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "::ffff:0:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(g.check("h", addr(ip)), Ok(()), "{ip} was refused");
        }
    }

    #[test]
    fn exceptions_come_from_configuration_but_never_open_keyway_itself() {
        let g = guard(&["127.0.0.0/8", "receiver.internal", "fd00::/8"]);
        assert_eq!(g.check("h", addr("127.0.0.2")), Ok(()));
        assert_eq!(g.check("h", addr("fd00::5")), Ok(()));
        assert_eq!(g.check("receiver.internal.", addr("10.0.0.1")), Ok(()));
        assert!(g.check("other.internal", addr("10.0.0.1")).is_err());
        let own = SocketAddr::new("127.0.0.1".parse().unwrap(), 8080);
        assert_eq!(g.check("h", own), Err(Refused::Own));
        assert_eq!(
            g.check("h", "127.0.0.5:8080".parse().unwrap()),
            Err(Refused::Own)
        );
        assert!(Egress::new(&["not a net/".into()], own).is_err());
    }

    #[tokio::test]
    async fn registration_resolves_names_and_refuses_bad_urls() {
        let g = guard(&[]);
        for url in [
            "http://127.0.0.1:9/x",
            "http://localhost:9/x",
            "http://[::1]:9/x",
            "http://127.0.0.2/x",
            "http://[::ffff:127.0.0.1]/x",
            "ftp://example.com/",
            "/relative",
            "http:///nohost",
        ] {
            assert!(g.check_url(url).await.is_err(), "{url} was accepted");
        }
        let open = guard(&["127.0.0.0/8", "::1/128"]);
        assert_eq!(open.check_url("http://localhost:9/hook").await, Ok(()));
        assert_eq!(
            open.check_url("http://127.0.0.1:8080/v1/x").await,
            Err(Refused::Own)
        );
    }
}
