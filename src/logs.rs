//! Process logs: `RUST_LOG` (else a per-command default) filters what is written, and a
//! background thread writes it to stderr through a buffer, flushed whenever it has
//! drained what is queued. So a request never waits on stderr: with every request
//! logged at `info` (the access line), writing each line from the request's own thread
//! took a quarter of `keyway serve`'s throughput (BENCHMARKS.md). If the queue ever
//! fills (128,000 lines), further lines are dropped rather than block a request; the
//! audit log, not this one, is the record of decisions.

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;

/// Keeps the writer thread; dropping it writes out what is still queued.
#[must_use = "dropping the guard stops the log writer"]
pub struct Logs(#[allow(dead_code)] WorkerGuard);

/// Starts logging with `default` as the filter when `RUST_LOG` is not set.
pub fn init(default: &str) -> Logs {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let (writer, guard) =
        tracing_appender::non_blocking(std::io::BufWriter::new(std::io::stderr()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // Colours only for a person at a terminal, not in files or collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Logs(guard)
}
