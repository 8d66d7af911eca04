//! The `keyway replay` command line: reads the captures (files, `--then`, `--capture`,
//! a HAR file), runs the replay and prints the result on stdout — the unified value or
//! the problem document, or for a HAR one result per operation — and on stderr which
//! answer each request got. Exit 0: parsed; 1: an error answer; 2: bad usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::stand_in::{Captures, Key, Pattern};
use super::{Captured, Operation, Replayed};

/// What the command line asked for.
#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// Which OEM's adapter (with --har: only this OEM's requests).
    pub oem: Option<String>,
    /// What the capture answers: vehicles, location, security, command, poll, error,
    /// wake, power, position, precheck, token.
    pub operation: Option<String>,
    /// The whole HTTP body of the operation's own answer.
    pub file: Option<PathBuf>,
    /// The answer's HTTP status (default 200; required for `error`).
    #[arg(long)]
    pub status: Option<u16>,
    /// An answer header, `Name: value` (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// `[STATUS:]FILE` answering the next request after the own one (repeatable, in
    /// order); other requests are answered from the adapter's fixtures.
    #[arg(long)]
    pub then: Vec<String>,
    /// `[METHOD] PATH=[STATUS:]FILE`: answers the requests matching PATH (`*` is any one
    /// segment), once each, in order (repeatable).
    #[arg(long)]
    pub capture: Vec<String>,
    /// A HAR file (browser, proxy, mitmproxy): every recognised request is replayed.
    #[arg(long, conflicts_with_all = ["operation", "file"])]
    pub har: Option<PathBuf>,
    /// The OEM, with --har.
    #[arg(long = "oem", conflicts_with = "oem")]
    pub oem_flag: Option<String>,
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("keyway replay: {msg}");
    ExitCode::from(2)
}

/// The largest HAR file read: a recording of many answers, each up to
/// [`crate::upstream::MAX_RESPONSE_BYTES`].
const MAX_HAR_BYTES: usize = 64 << 20;

/// A file's bytes, refused when larger than `max` (or endless).
fn read_capped(path: &Path, max: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut body = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max as u64 + 1).read_to_end(&mut body))
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    if body.len() > max {
        return Err(format!(
            "{} is larger than {max} bytes, the most keyway reads of an OEM's answer",
            path.display()
        ));
    }
    Ok(body)
}

/// `[STATUS:]FILE` as a capture (status 200 unless given).
fn capture_file(spec: &str) -> Result<Captured, String> {
    let (status, file) = match spec.split_once(':') {
        Some((s, f)) if s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()) => {
            (s.parse().unwrap_or(200), f)
        }
        _ => (200, spec),
    };
    let body = read_capped(Path::new(file), crate::upstream::MAX_RESPONSE_BYTES)?;
    Captured::new(status, Vec::new(), body.into(), file).map_err(|e| e.to_string())
}

/// Runs `keyway replay`.
pub async fn run(a: Args) -> ExitCode {
    if let Some(har) = &a.har {
        return run_har(har, a.oem.as_deref().or(a.oem_flag.as_deref())).await;
    }
    let (Some(oem), Some(operation)) = (a.oem.as_deref(), a.operation.as_deref()) else {
        return usage("give OEM OPERATION FILE, or --har FILE");
    };
    let Some(op) = Operation::parse(operation) else {
        return usage(format!(
            "unknown operation {operation:?}; one of {}",
            <Operation as strum::VariantNames>::VARIANTS.join(", ")
        ));
    };
    match captures(op, &a) {
        Ok(c) => replay(oem, op, c).await,
        Err(msg) => usage(msg),
    }
}

fn captures(op: Operation, a: &Args) -> Result<Captures, String> {
    let status = match (op, a.status) {
        (Operation::Error, None) => return Err("`error` needs --status".into()),
        (Operation::Error, Some(s)) if (200..300).contains(&s) => {
            return Err("`error` is for a non-2xx answer".into());
        }
        (_, s) => s.unwrap_or(200),
    };
    let mut headers = Vec::new();
    for h in &a.headers {
        match h.split_once(':') {
            Some((name, value)) => {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
            None => return Err(format!("--header {h:?} is not `Name: value`")),
        }
    }
    let own = match &a.file {
        Some(file) => {
            let body = read_capped(file, crate::upstream::MAX_RESPONSE_BYTES)?;
            let label = file.display().to_string();
            Some(Captured::new(status, headers, body.into(), label).map_err(|e| e.to_string())?)
        }
        None if a.capture.is_empty() => return Err("no capture given".into()),
        None => None,
    };
    let then = a
        .then
        .iter()
        .map(|t| capture_file(t))
        .collect::<Result<_, _>>()?;
    let mut keyed = Vec::new();
    for spec in &a.capture {
        let Some((pattern, file)) = spec.rsplit_once('=') else {
            return Err(format!("--capture {spec:?} is not `PATTERN=FILE`"));
        };
        let pattern = Pattern::parse(pattern).map_err(|e| e.to_string())?;
        keyed.push((Key::Pattern(pattern), capture_file(file)?));
    }
    Ok(Captures { own, then, keyed })
}

async fn replay(oem: &str, op: Operation, c: Captures) -> ExitCode {
    let replay = match super::replay(oem, op, c, None).await {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    for s in &replay.steps {
        eprintln!(
            "keyway replay: {} {} [{}] {} ← {}",
            s.method,
            s.path,
            s.route.unwrap_or("unknown request"),
            s.status,
            s.answered_by
        );
    }
    if let Some(route) = replay.read_as {
        eprintln!(
            "keyway replay: the capture is no answer to `{op}`'s own request; it read as \
             the answer to the {route} request",
            op = op.name()
        );
    }
    let (value, code) = match replay.outcome {
        Replayed::Parsed(v) => (v, ExitCode::SUCCESS),
        Replayed::Error(p) => (p, ExitCode::FAILURE),
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
    code
}

async fn run_har(file: &Path, oem: Option<&str>) -> ExitCode {
    let bytes = match read_capped(file, MAX_HAR_BYTES) {
        Ok(b) => b,
        Err(e) => return usage(e),
    };
    match super::har::replay(&bytes, oem).await {
        Ok(results) => {
            let failed = results.iter().any(|r| r.get("problem").is_some());
            println!(
                "{}",
                serde_json::to_string_pretty(&results).unwrap_or_default()
            );
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => usage(e),
    }
}
