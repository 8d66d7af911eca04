//! The `keyway` binary: `serve`, `demo`, `mock`, `token`, `gen-key`, `rotate-key`,
//! `audit verify` and `check-config`.

/// mimalloc: glibc's allocator spent a tenth of the gateway's CPU in arena locks under
/// load (see BENCHMARKS.md); mimalloc's per-thread heaps avoid them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use keyway::auth::{DevToken, mint_hs256};
use keyway::config::Config;
use keyway::demo::{self, DemoOptions};
use keyway::gateway::Gateway;
use keyway::server;

#[derive(Parser)]
#[command(
    name = "keyway",
    version,
    about = "One safe API for locating, locking and unlocking cars of many automakers"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the unified API.
    Serve {
        /// The configuration file.
        #[arg(long, default_value = "keyway.toml")]
        config: PathBuf,
    },
    /// Run the gateway, every mock OEM and a demo fleet in one process.
    Demo {
        /// Where the gateway listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the demo keeps its state.
        #[arg(long, default_value = "keyway-data")]
        data_dir: PathBuf,
        /// Mock OEM access-token lifetime in seconds (short values show refreshes).
        #[arg(long, default_value_t = 8 * 3600)]
        token_ttl: u64,
        /// Let webhooks reach this address, CIDR or host name, which the egress guard
        /// refuses by default (e.g. `127.0.0.1` for a receiver on this laptop); repeatable.
        #[arg(long = "webhook-allow")]
        webhook_allow: Vec<String>,
    },
    /// Run one mock OEM alone (its OAuth server, fault API and journal), e.g. for
    /// another team's contract tests.
    Mock {
        /// Which OEM (one of `keyway::mocks::MOCKS`).
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(keyway::mocks::oems()))]
        oem: String,
        /// Where it listens.
        #[arg(long, default_value = "127.0.0.1:9001")]
        listen: SocketAddr,
        /// Cars for the owner beyond the fleet's, like the fleet's first.
        #[arg(long, default_value_t = 0)]
        cars: usize,
        /// A fleet file in the shape of fixtures/demo-fleet.json (default: the demo fleet).
        #[arg(long)]
        fleet: Option<PathBuf>,
        /// Run the mock's clock this many milliseconds ahead of the machine's (negative:
        /// behind): its timestamps and `Date` answers, as an OEM whose clock is off.
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        clock_offset_ms: i64,
    },
    /// Mint a development (HS256) caller token with the configured secret.
    Token {
        /// The configuration file (for issuer, audience and secret).
        #[arg(long, default_value = "keyway.toml")]
        config: PathBuf,
        /// The token's subject (the calling service).
        #[arg(long)]
        sub: String,
        /// The tenant the service acts for (default: its subject).
        #[arg(long)]
        tenant: Option<String>,
        /// Space-separated scopes.
        #[arg(long)]
        scope: String,
        /// Comma-separated vehicle ids the token is restricted to.
        #[arg(long, value_delimiter = ',')]
        vehicles: Option<Vec<String>>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Print a new random key for `[crypto] keys`.
    GenKey,
    /// Print the API's OpenAPI 3.1 document (what `GET /openapi.json` serves;
    /// `keyway openapi > openapi.json` refreshes the checked-in copy).
    Openapi,
    /// Make a Tesla application key pair: the private key (PEM, mode 0600) for
    /// `oems.tesla.app_key_file`, the public key to host at your app domain's
    /// `/.well-known/appspecific/com.tesla.3p.public-key.pem`.
    TeslaKeygen {
        /// Where to write the private key (refuses to overwrite).
        #[arg(long, default_value = "tesla-app-key.pem")]
        out: PathBuf,
    },
    /// Re-seal every stored OEM token with `crypto.active_key` (safe beside a running
    /// gateway). Afterwards older keys can be removed from the configuration.
    RotateKey {
        /// The configuration file.
        #[arg(long, default_value = "keyway.toml")]
        config: PathBuf,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        action: AuditCmd,
    },
    /// Run captured OEM answers through an adapter and print the unified result (or the
    /// classified error as a problem document); stderr says which answer each request
    /// got. Exit 0: parsed; 1: an error answer; 2: bad usage.
    Replay(keyway::replay::cli::Args),
    /// Validate a configuration file and exit.
    CheckConfig {
        /// The configuration file.
        #[arg(long, default_value = "keyway.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Walk the hash chain; exit 1 naming the first edited, deleted or inserted row.
    Verify {
        /// The configuration file (for the store).
        #[arg(long, default_value = "keyway.toml")]
        config: PathBuf,
    },
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("keyway: {msg}");
    ExitCode::FAILURE
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve { config } => {
            let _logs = keyway::logs::init("info");
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let listen = config.listen;
            let gateway = match Gateway::start(config).await {
                Ok(g) => g,
                Err(e) => return fail(e),
            };
            let listener = match server::listen(listen) {
                Ok(l) => l,
                Err(e) => return fail(format!("listening on {listen}: {e}")),
            };
            tracing::info!(%listen, "keyway serving");
            match server::serve(gateway, listener, server::signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Cmd::Demo {
            listen,
            data_dir,
            token_ttl,
            webhook_allow,
        } => {
            let _logs = keyway::logs::init("warn,keyway=info");
            let allow: std::sync::Arc<dyn Fn(&mut Config) + Send + Sync> =
                std::sync::Arc::new(move |c: &mut Config| {
                    c.events.webhook_allow.extend(webhook_allow.iter().cloned())
                });
            let opts = DemoOptions {
                listen,
                data_dir,
                token_ttl: Duration::from_secs(token_ttl),
                configure: Some(allow),
                ..DemoOptions::default()
            };
            match demo::run(opts).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Cmd::TeslaKeygen { out } => tesla_keygen(&out),
        Cmd::Replay(args) => keyway::replay::cli::run(args).await,
        Cmd::Mock {
            oem,
            listen,
            cars,
            fleet,
            clock_offset_ms,
        } => {
            let _logs = keyway::logs::init("info");
            keyway_adapter::mock::timeline::set_clock_offset(clock_offset_ms);
            let settings = keyway::mocks::Settings {
                extra_cars: cars,
                ..Default::default()
            };
            let m = match keyway::mocks::alone(&oem, listen, fleet.as_deref(), &settings).await {
                Ok(m) => m,
                Err(e) => return fail(e),
            };
            let url = m.server.url();
            let from = fleet
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_else(|| "the demo fleet".into());
            println!("{oem} mock at {url} ({} cars from {from})", m.cars);
            if let Some(key) = keyway::mocks::entry(&oem).and_then(|e| e.api_key) {
                println!("  application key: {key}");
            }
            println!("  OWNER_TOKEN={}", m.owner_token);
            println!(
                "  OAuth client it accepts: client_id={} client_secret={}",
                keyway::mocks::CLIENT_ID,
                keyway::mocks::CLIENT_SECRET
            );
            if let Some(info) = keyway::registry::info(&oem) {
                println!(
                    "  OAuth: authorize {url}{}   token {url}{}",
                    info.oauth.authorize_path, info.oauth.token_path
                );
            }
            println!("  to point `keyway serve` at it, in its configuration:");
            println!("    [oems.{oem}]");
            println!("    api_base_url = \"{url}\"    # also its auth_base_url");
            println!(
                "    client_id = \"{}\"    # client_secret: KEYWAY_OEMS_{}_CLIENT_SECRET={}",
                keyway::mocks::CLIENT_ID,
                oem.to_ascii_uppercase(),
                keyway::mocks::CLIENT_SECRET
            );
            if let Some(key) = keyway::mocks::entry(&oem).and_then(|e| e.api_key) {
                println!(
                    "    # api_key: KEYWAY_OEMS_{}_API_KEY={key}",
                    oem.to_ascii_uppercase()
                );
            }
            println!("  another owner token: curl -s -X POST {url}/__mock/token");
            println!("  state: GET {url}/__mock/state   journal: GET {url}/__mock/requests");
            println!(
                "  faults: POST {url}/__mock/faults   timing: PUT {url}/__mock/timing (not Tesla)\n  \
                 the world: PATCH {url}/__mock/vehicles/VIN {{locked, latitude, longitude, heading, asleep, refusing, doors}}"
            );
            server::signal().await;
            ExitCode::SUCCESS
        }
        Cmd::Token {
            config,
            sub,
            tenant,
            scope,
            vehicles,
            ttl,
        } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let scopes: Vec<String> = scope.split_whitespace().map(str::to_string).collect();
            if let Some(bad) = scopes
                .iter()
                .find(|s| keyway::auth::Scope::parse(s).is_none())
            {
                return fail(format!("unknown scope {bad:?}"));
            }
            match mint_hs256(
                &config.auth,
                &DevToken {
                    sub: &sub,
                    tenant: tenant.as_deref(),
                    scopes: &scopes,
                    vehicles,
                    ttl_s: ttl,
                },
            ) {
                Ok(t) => {
                    println!("{t}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Cmd::Openapi => {
            print!("{}", keyway::api::contract::json());
            ExitCode::SUCCESS
        }
        Cmd::GenKey => match keyway::crypto::generate_key() {
            Ok(k) => {
                println!("{k}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Cmd::RotateKey { config } => {
            let _logs = keyway::logs::init("warn");
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let active = config.crypto.active_key.clone().unwrap_or_default();
            let gateway = match Gateway::start(config).await {
                Ok(g) => g,
                Err(e) => return fail(e),
            };
            match gateway.tokens.reseal_all().await {
                Ok(n) => {
                    println!("re-sealed the tokens of {n} account(s) with key {active:?}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Cmd::Audit {
            action: AuditCmd::Verify { config },
        } => {
            let _logs = keyway::logs::init("warn");
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let store =
                match keyway::gateway::open_store(&config, &keyway::clock::Clock::wall()).await {
                    Ok(s) => s,
                    Err(e) => return fail(e),
                };
            match keyway::audit::verify(store.as_ref()).await {
                Ok(v) => {
                    println!("audit log intact: {} rows, head {}", v.rows, v.head);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format!("audit log broken: {e}")),
            }
        }
        Cmd::CheckConfig { config: path } => {
            let checked = match Config::load_noting(&path) {
                Ok((c, deprecated)) => {
                    for note in deprecated {
                        eprintln!("keyway: warning: {note}");
                    }
                    keyway::gateway::Gateway::check(c)
                        .await
                        .map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            match checked {
                Ok(()) => {
                    println!("{}: ok", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
    }
}

/// Reads at most `max` bytes of `path`; a longer file (or an endless one, such as
/// `/dev/zero`) is refused, as the live transport refuses an answer over `max`.
/// `keyway tesla-keygen`: writes a new private key (never printed) and prints the
/// public key.
fn tesla_keygen(out: &std::path::Path) -> ExitCode {
    use std::io::Write;
    let key = keyway_tesla::vcp::AppKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options
        .open(out)
        .and_then(|mut f| f.write_all(key.private_pem().as_bytes()));
    if let Err(e) = written {
        eprintln!("keyway: cannot write {}: {e}", out.display());
        return ExitCode::from(1);
    }
    eprintln!(
        "keyway: private key written to {} (set oems.tesla.app_key_file); public key:",
        out.display()
    );
    print!("{}", key.public_pem());
    ExitCode::SUCCESS
}
