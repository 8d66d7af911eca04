//! A small Redis client for what cluster mode needs — `EVALSHA`/`EVAL` of keyway's
//! limit scripts, over RESP2 on plain TCP — with a deadline on every exchange and a
//! few pooled connections. Any failure (refused, reset, timeout, protocol) drops the
//! connection and is returned as [`RedisError`]; callers fall back to local limits, so
//! a dead Redis costs one deadline and never an outage.

use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::sync::lock;

/// Why a Redis exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// Connecting, reading or writing failed.
    #[error("redis i/o: {0}")]
    Io(#[from] std::io::Error),
    /// No answer within the deadline.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error.
    #[error("redis error: {0}")]
    Server(String),
    /// The answer was not RESP, or not the expected shape.
    #[error("redis protocol: {0}")]
    Protocol(String),
    /// A bad `redis://` URL.
    #[error("redis url: {0}")]
    Url(String),
}

/// One RESP2 reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR …` (kept as a value; [`Redis::call`] turns it into an error).
    Error(String),
    /// `:42`
    Int(i64),
    /// `$…` (None: the null bulk string).
    Bulk(Option<Vec<u8>>),
    /// `*…` (None: the null array).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The integer this reply carries.
    pub fn int(&self) -> Result<i64, RedisError> {
        match self {
            Reply::Int(n) => Ok(*n),
            other => Err(RedisError::Protocol(format!(
                "expected an integer, got {other:?}"
            ))),
        }
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Largest bulk string or array keyway accepts from Redis.
const MAX_LEN: i64 = 16 << 20;

async fn line<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<String, RedisError> {
    let mut buf = Vec::new();
    let n = r.read_until(b'\n', &mut buf).await?;
    if n == 0 {
        return Err(RedisError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    if buf.len() < 2 || buf[buf.len() - 2] != b'\r' {
        return Err(RedisError::Protocol("line without CRLF".into()));
    }
    buf.truncate(buf.len() - 2);
    String::from_utf8(buf).map_err(|_| RedisError::Protocol("line is not UTF-8".into()))
}

fn length(s: &str) -> Result<i64, RedisError> {
    let n: i64 = s
        .parse()
        .map_err(|_| RedisError::Protocol(format!("bad length {s:?}")))?;
    if !(-1..=MAX_LEN).contains(&n) {
        return Err(RedisError::Protocol(format!("length {n} out of range")));
    }
    Ok(n)
}

/// Reads one reply.
pub async fn read<R: AsyncBufRead + Unpin + Send>(r: &mut R) -> Result<Reply, RedisError> {
    // Arrays nest: read them with an explicit stack rather than recursion.
    enum Frame {
        Array(usize, Vec<Reply>),
    }
    let mut stack: Vec<Frame> = Vec::new();
    loop {
        let l = line(r).await?;
        let (kind, rest) = l.split_at(l.len().min(1));
        let mut value = match kind {
            "+" => Reply::Simple(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Int(
                rest.parse()
                    .map_err(|_| RedisError::Protocol(format!("bad integer {rest:?}")))?,
            ),
            "$" => match length(rest)? {
                -1 => Reply::Bulk(None),
                n => {
                    let mut data = vec![0u8; n as usize + 2];
                    r.read_exact(&mut data).await?;
                    if !data.ends_with(b"\r\n") {
                        return Err(RedisError::Protocol("bulk string without CRLF".into()));
                    }
                    data.truncate(n as usize);
                    Reply::Bulk(Some(data))
                }
            },
            "*" => match length(rest)? {
                -1 => Reply::Array(None),
                0 => Reply::Array(Some(Vec::new())),
                n => {
                    stack.push(Frame::Array(n as usize, Vec::with_capacity(n as usize)));
                    continue;
                }
            },
            _ => return Err(RedisError::Protocol(format!("unknown reply {l:?}"))),
        };
        // Fold the value into the arrays it completes.
        loop {
            match stack.last_mut() {
                None => return Ok(value),
                Some(Frame::Array(want, items)) => {
                    items.push(value);
                    if items.len() < *want {
                        break;
                    }
                    let Some(Frame::Array(_, items)) = stack.pop() else {
                        unreachable!("the frame was just seen")
                    };
                    value = Reply::Array(Some(items));
                }
            }
        }
    }
}

type Conn = BufReader<TcpStream>;

/// A Redis server.
pub struct Redis {
    addr: String,
    db: Option<u32>,
    timeout: Duration,
    idle: Mutex<Vec<Conn>>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("addr", &self.addr).finish()
    }
}

impl Redis {
    /// A client for `redis://HOST:PORT[/DB]`, each exchange bounded by `timeout`.
    /// Connects lazily.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, RedisError> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| RedisError::Url("expected redis://HOST:PORT[/DB]".into()))?;
        let (hostport, db) = match rest.split_once('/') {
            Some((h, "")) => (h, None),
            Some((h, d)) => (
                h,
                Some(
                    d.parse()
                        .map_err(|_| RedisError::Url(format!("bad database {d:?}")))?,
                ),
            ),
            None => (rest, None),
        };
        if hostport.contains('@') {
            return Err(RedisError::Url(
                "credentials in the URL are not supported; use a loopback or private network"
                    .into(),
            ));
        }
        let addr = if hostport
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            hostport.to_string()
        } else {
            format!("{hostport}:6379")
        };
        Ok(Self {
            addr,
            db,
            timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    async fn connect(&self) -> Result<Conn, RedisError> {
        let stream = TcpStream::connect(&self.addr).await?;
        stream.set_nodelay(true)?;
        let mut conn = BufReader::new(stream);
        if let Some(db) = self.db {
            let db = db.to_string();
            exchange(&mut conn, &encode(&[b"SELECT", db.as_bytes()])).await?;
        }
        Ok(conn)
    }

    /// Sends one command and reads its reply; a Redis error reply is an error.
    pub async fn call(&self, args: &[&[u8]]) -> Result<Reply, RedisError> {
        let request = encode(args);
        let work = async {
            let pooled = lock(&self.idle).pop();
            let mut conn = match pooled {
                Some(c) => c,
                None => self.connect().await?,
            };
            let reply = exchange(&mut conn, &request).await?;
            let mut idle = lock(&self.idle);
            if idle.len() < 8 {
                idle.push(conn);
            }
            Ok::<_, RedisError>(reply)
        };
        let reply = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| RedisError::Timeout(self.timeout))??;
        match reply {
            Reply::Error(e) => Err(RedisError::Server(e)),
            other => Ok(other),
        }
    }

    /// Runs a Lua script by its SHA-1, loading it when Redis does not know it yet.
    pub async fn eval(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[String],
    ) -> Result<Reply, RedisError> {
        let numkeys = keys.len().to_string();
        let mut tail: Vec<&[u8]> = vec![numkeys.as_bytes()];
        tail.extend(keys.iter().map(|k| k.as_bytes()));
        tail.extend(args.iter().map(|a| a.as_bytes()));
        let mut call: Vec<&[u8]> = vec![b"EVALSHA", script.sha.as_bytes()];
        call.extend(&tail);
        match self.call(&call).await {
            Err(RedisError::Server(e)) if e.starts_with("NOSCRIPT") => {
                let mut call: Vec<&[u8]> = vec![b"EVAL", script.source.as_bytes()];
                call.extend(&tail);
                self.call(&call).await
            }
            other => other,
        }
    }
}

async fn exchange(conn: &mut Conn, request: &[u8]) -> Result<Reply, RedisError> {
    conn.get_mut().write_all(request).await?;
    read(conn).await
}

/// A Lua script and its SHA-1 (what `EVALSHA` names it by).
#[derive(Debug)]
pub struct Script {
    source: &'static str,
    sha: String,
}

impl Script {
    /// Wraps a script's source.
    pub fn new(source: &'static str) -> Self {
        let digest =
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, source.as_bytes());
        let sha = hex::encode(digest.as_ref());
        Self { source, sha }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Encodes a reply the way a server would.
    fn serve(r: &Reply, out: &mut Vec<u8>) {
        match r {
            Reply::Simple(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
            Reply::Error(s) => out.extend_from_slice(format!("-{s}\r\n").as_bytes()),
            Reply::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
            Reply::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
            Reply::Bulk(Some(b)) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Array(None) => out.extend_from_slice(b"*-1\r\n"),
            Reply::Array(Some(items)) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for i in items {
                    serve(i, out);
                }
            }
        }
    }

    fn reply() -> impl Strategy<Value = Reply> {
        let line = "[a-zA-Z0-9 _:.-]{0,20}";
        let leaf = prop_oneof![
            line.prop_map(Reply::Simple),
            line.prop_map(Reply::Error),
            any::<i64>().prop_map(Reply::Int),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))
                .prop_map(Reply::Bulk),
            Just(Reply::Array(None)),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            proptest::collection::vec(inner, 0..6).prop_map(|v| Reply::Array(Some(v)))
        })
    }

    fn parse(bytes: &[u8]) -> Result<Reply, RedisError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut r = BufReader::new(bytes);
            read(&mut r).await
        })
    }

    proptest! {
        #[test]
        fn every_reply_reads_back(r in reply()) {
            let mut bytes = Vec::new();
            serve(&r, &mut bytes);
            prop_assert_eq!(parse(&bytes).unwrap(), r);
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn a_truncated_reply_is_an_error(r in reply(), cut in 1usize..64) {
            let mut bytes = Vec::new();
            serve(&r, &mut bytes);
            let cut = cut.min(bytes.len());
            prop_assert!(parse(&bytes[..bytes.len() - cut]).is_err());
        }
    }

    #[test]
    fn commands_encode_as_bulk_arrays() {
        assert_eq!(
            encode(&[b"GET", b"k"]),
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".to_vec()
        );
    }

    #[test]
    fn urls() {
        let r = Redis::new("redis://127.0.0.1:6380/2", Duration::from_millis(5)).unwrap();
        assert_eq!((r.addr.as_str(), r.db), ("127.0.0.1:6380", Some(2)));
        let r = Redis::new("redis://localhost", Duration::from_millis(5)).unwrap();
        assert_eq!(r.addr, "localhost:6379");
        assert!(Redis::new("http://x", Duration::from_millis(5)).is_err());
        assert!(Redis::new("redis://u:p@x", Duration::from_millis(5)).is_err());
    }

    #[test]
    fn script_sha_is_sha1_of_the_source() {
        assert_eq!(
            Script::new("return 1").sha,
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }
}
