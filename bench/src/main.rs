//! `keyway-bench`: the drivers behind `bench/run`.
//!
//! - `env`: the Tesla mock in fast mode with a large fleet and the gateway in front of
//!   it (the demo assembly, limits opened up), writing URLs, tokens and wrk scripts.
//! - `load`: an open-loop, fixed-rate load generator; latency is measured from each
//!   request's *scheduled* send time, so a stall cannot hide (no coordinated omission).
//! - `burst`: N concurrent requests at once (coalescing, token single flight, commands).
//! - `seed`: an SQLite store with N registered vehicles (memory figures).
//!
//! Every request goes to loopback only; every loop is bounded by count or duration.

/// The same allocator as the `keyway` binary, so the benchmark measures what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use keyway::api::extract::MaxAge;
use keyway::demo::{self, DemoOptions};
use keyway::store::{AccountRecord, AccountStatus, SqlStore, StoredTokens, VehicleRecord};
use serde_json::json;
use tokio::time::Instant;

#[derive(Parser)]
#[command(name = "keyway-bench")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the benchmark environment until killed.
    Env {
        /// Where keyway listens.
        #[arg(long, default_value = "127.0.0.1:18080")]
        listen: std::net::SocketAddr,
        /// Data dir.
        #[arg(long)]
        data_dir: PathBuf,
        /// Cars in the fleet.
        #[arg(long, default_value_t = 1000)]
        vehicles: usize,
        /// Where to write env.json and the wrk scripts.
        #[arg(long)]
        out: PathBuf,
        /// Where the Tesla mock listens (default: any free port).
        #[arg(long)]
        tesla_mock_listen: Option<std::net::SocketAddr>,
        /// keyway's serving threads (`http.workers`: 0 one per core, 1 the
        /// work-stealing runtime alone).
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Also serve the same gateway here, in another serving mode (side-by-side
        /// comparison in one run).
        #[arg(long)]
        compare_listen: Option<std::net::SocketAddr>,
        /// The serving threads of the comparison listener.
        #[arg(long, default_value_t = 1)]
        compare_workers: usize,
        /// Also serve the floors here: keyway's HTTP stack alone (the same per-core
        /// serving, router and path extraction) answering a location from memory, or,
        /// asked for a fresh one, passing the read through bare to the Fleet API.
        #[arg(long)]
        floor_listen: Option<std::net::SocketAddr>,
        /// The Fleet API base keyway calls (default: the mock; a proxy in front of it
        /// puts a fast static OEM in another process on the read path).
        #[arg(long)]
        tesla_api: Option<String>,
    },
    /// Fixed-rate load: prints JSON with latency percentiles.
    Load {
        /// Base URL.
        #[arg(long)]
        url: String,
        /// Paths, one per line, used round-robin.
        #[arg(long)]
        paths: PathBuf,
        /// Requests per second.
        #[arg(long)]
        rate: u64,
        /// Seconds.
        #[arg(long)]
        duration: u64,
        /// Headers `name: value`.
        #[arg(long = "header")]
        headers: Vec<String>,
    },
    /// N requests at once; prints JSON with timings.
    Burst {
        /// Base URL.
        #[arg(long)]
        url: String,
        /// Paths, one per line, used round-robin.
        #[arg(long)]
        paths: PathBuf,
        /// How many.
        #[arg(long)]
        n: usize,
        /// HTTP method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// In flight at once (default: all).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Headers `name: value`.
        #[arg(long = "header")]
        headers: Vec<String>,
    },
    /// Create an SQLite store with N registered vehicles.
    Seed {
        /// Database file.
        #[arg(long)]
        db: PathBuf,
        /// Vehicles.
        #[arg(long)]
        vehicles: usize,
    },
}

type Http = Client<HttpConnector, Full<Bytes>>;

fn client() -> Http {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(2048)
        .build(c)
}

fn parse_headers(headers: &[String]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|h| h.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

async fn one(
    http: &Http,
    method: &str,
    url: &str,
    headers: &[(String, String)],
) -> Result<u16, String> {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = http
        .request(
            req.body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())?,
        )
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    resp.into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(status)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(mut lat_us: Vec<u64>, ok: usize, errors: usize, elapsed: Duration) -> serde_json::Value {
    lat_us.sort_unstable();
    json!({
        "requests": ok + errors,
        "ok": ok,
        "errors": errors,
        "seconds": elapsed.as_secs_f64(),
        "rps": (ok + errors) as f64 / elapsed.as_secs_f64(),
        "p50_us": percentile(&lat_us, 0.50),
        "p99_us": percentile(&lat_us, 0.99),
        "p999_us": percentile(&lat_us, 0.999),
        "max_us": lat_us.last().copied().unwrap_or(0),
    })
}

fn read_paths(file: &PathBuf) -> Vec<String> {
    std::fs::read_to_string(file)
        .expect("paths file")
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

async fn load(
    url: String,
    paths: Vec<String>,
    rate: u64,
    duration: u64,
    headers: Vec<(String, String)>,
) {
    let http = client();
    let headers = Arc::new(headers);
    let results = Arc::new(Mutex::new((Vec::new(), 0usize, 0usize)));
    // The first fifth of a second warms up (the generator's connections are opened then)
    // and is not counted.
    let warm = (rate / 5) as usize;
    let total = (rate * duration) as usize + warm;
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let scheduled = start + period * i as u32;
        tokio::time::sleep_until(scheduled).await;
        let (http, headers, results) = (http.clone(), headers.clone(), results.clone());
        let target = format!("{url}{}", paths[i % paths.len()]);
        tasks.push(tokio::spawn(async move {
            let r = one(&http, "GET", &target, &headers).await;
            let us = scheduled.elapsed().as_micros() as u64;
            if i < warm {
                return;
            }
            let mut g = results.lock().unwrap();
            match r {
                Ok(s) if s < 400 => {
                    g.0.push(us);
                    g.1 += 1;
                }
                _ => g.2 += 1,
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = (start + period * warm as u32).elapsed();
    let (lat, ok, errors) = std::mem::take(&mut *results.lock().unwrap());
    println!("{}", summary(lat, ok, errors, elapsed));
}

async fn burst(
    url: String,
    paths: Vec<String>,
    n: usize,
    method: String,
    concurrency: Option<usize>,
    headers: Vec<(String, String)>,
) {
    let http = client();
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.unwrap_or(n).max(1)));
    let headers = Arc::new(headers);
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (http, headers, permits, method) = (
                http.clone(),
                headers.clone(),
                permits.clone(),
                method.clone(),
            );
            let target = format!("{url}{}", paths[i % paths.len()]);
            tokio::spawn(async move {
                let _p = permits.acquire_owned().await;
                let t = Instant::now();
                let r = one(&http, &method, &target, &headers).await;
                (t.elapsed().as_micros() as u64, r)
            })
        })
        .collect();
    let (mut lat, mut ok, mut errors) = (Vec::new(), 0, 0);
    for t in tasks {
        match t.await {
            Ok((us, Ok(s))) if s < 400 => {
                lat.push(us);
                ok += 1;
            }
            _ => errors += 1,
        }
    }
    println!("{}", summary(lat, ok, errors, start.elapsed()));
}

/// How the environment serves keyway: its `http.workers`, and optionally the same
/// gateway once more on another address with other workers.
struct Serving {
    workers: usize,
    compare: Option<(std::net::SocketAddr, usize)>,
    floor: Option<std::net::SocketAddr>,
}

/// The floors: keyway's HTTP stack without keyway (no token check, limits, lookups,
/// translation, logs or metrics). The router matches the location route and extracts
/// the id, then answers a location of keyway's size from memory, or, when the request
/// demands a fresh reading (`Cache-Control` read as keyway reads it) and `upstream` is
/// set, passes it through bare to the Fleet API there with hyper-util's pooled client,
/// as keyway does (one pool per serving thread), answering the OEM's body as it is:
/// the same work nginx's pass-through does.
fn floor_app(upstream: Option<String>) -> axum::Router {
    const LOCATION: &str = r#"{"vehicle_id":"veh_aaaaaaaaaaaaaaaaaaaaaaaaaa","latitude":52.520008,"longitude":13.404954,"heading":289.0,"recorded_at":"2026-12-02T10:00:00Z","age_s":0}"#;
    thread_local! {
        static CLIENT: Http = client();
    }
    let upstream: Option<Arc<str>> = upstream.map(Into::into);
    axum::Router::new().route(
        "/v1/vehicles/{id}/location",
        axum::routing::get(
            move |axum::extract::Path(id): axum::extract::Path<String>, MaxAge(max_age): MaxAge| {
                let fresh = max_age == Some(Duration::ZERO);
                let upstream = upstream.clone().filter(|_| fresh);
                async move {
                    let json = [(http::header::CONTENT_TYPE, "application/json")];
                    let Some(base) = upstream else {
                        return (
                            http::StatusCode::OK,
                            json,
                            Bytes::from_static(LOCATION.as_bytes()),
                        );
                    };
                    let req = Request::get(format!(
                        "{base}/api/1/vehicles/{id}/vehicle_data?endpoints=location_data"
                    ))
                    .body(Full::new(Bytes::new()))
                    .expect("a request");
                    let answer = CLIENT.with(|c| c.request(req)).await;
                    match answer {
                        Ok(resp) => {
                            let status = resp.status();
                            let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                            (status, json, body.unwrap_or_default())
                        }
                        Err(_) => (http::StatusCode::BAD_GATEWAY, json, Bytes::new()),
                    }
                }
            },
        ),
    )
}

/// Serves `app` on `addr` with `workers` serving threads, in the background; its URL.
fn serve_beside(app: axum::Router, addr: std::net::SocketAddr, workers: usize) -> String {
    let listener = keyway::server::listen(addr).expect("a benchmark listener");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(keyway::server::serve_http(
        app,
        listener,
        workers,
        std::future::pending(),
    ));
    format!("http://{addr}")
}

async fn env(
    listen: std::net::SocketAddr,
    data_dir: PathBuf,
    vehicles: usize,
    out: PathBuf,
    tesla_mock_listen: Option<std::net::SocketAddr>,
    tesla_api: Option<String>,
    serving: Serving,
) {
    let Serving {
        workers,
        compare,
        floor,
    } = serving;
    std::fs::create_dir_all(&out).expect("out dir");
    let floor_upstream = tesla_api.clone();
    let opts = DemoOptions {
        listen,
        data_dir,
        wake_delay: Duration::ZERO,
        more: Some(demo::More {
            oem: "tesla",
            cars: vehicles,
            listen: tesla_mock_listen,
        }),
        configure: Some(Arc::new(move |c: &mut keyway::config::Config| {
            if let (Some(api), Some(t)) = (&tesla_api, c.oems.get_mut("tesla")) {
                t.api_base_url = api.clone();
            }
            c.inbound.caller_per_s = 10_000_000;
            c.inbound.caller_burst = 10_000_000;
            c.inbound.unlocks_per_vehicle_per_min = 10_000_000;
            c.inbound.unlock_burst = 10_000_000;
            c.inbound.max_in_flight = 100_000;
            c.http.workers = workers;
        })),
        ..DemoOptions::default()
    };
    let d = demo::start(opts)
        .await
        .expect("benchmark environment starts");
    // Wake the fixture's sleeping car so every car answers at once.
    for v in &d.vehicles {
        d.mock::<keyway_tesla::TeslaMock>("tesla")
            .update(&v.oem_id, |m| m.state = keyway_tesla::mock::Power::Online);
    }
    let mock_token = d
        .mock::<keyway_tesla::TeslaMock>("tesla")
        .tokens
        .issue("demo-owner")
        .access_token;
    let cars: Vec<&VehicleRecord> = d
        .vehicles
        .iter()
        .filter(|v| v.oem_id.starts_with("5YJ3E1EA0LF"))
        .collect();
    let write = |name: &str, lines: Vec<String>| {
        std::fs::write(out.join(name), lines.join("\n") + "\n").expect("write");
    };
    write(
        "keyway_locate.txt",
        cars.iter()
            .map(|v| format!("/v1/vehicles/{}/location", v.id))
            .collect(),
    );
    write(
        "keyway_lock.txt",
        cars.iter()
            .map(|v| format!("/v1/vehicles/{}/lock", v.id))
            .collect(),
    );
    write(
        "direct_locate.txt",
        cars.iter()
            .map(|v| {
                format!(
                    "/api/1/vehicles/{}/vehicle_data?endpoints=location_data",
                    v.oem_id
                )
            })
            .collect(),
    );
    let compare = compare
        .map(|(addr, workers)| serve_beside(keyway::api::app(d.gateway.clone()), addr, workers));
    let floor = floor.map(|addr| {
        serve_beside(
            floor_app(floor_upstream),
            addr,
            d.gateway.config.http.worker_count(),
        )
    });
    let info = json!({
        "keyway": format!("http://{}", d.addr),
        "keyway_compare": compare,
        "floor": floor,
        "token": d.token,
        "mock": d.server("tesla").url(),
        "mock_port": d.server("tesla").addr.port(),
        "mock_token": mock_token,
        "vehicles": cars.len(),
        "one_car": cars[0].id,
        "cold_car": d.vehicles.iter().find(|v| v.oem_id == "5YJ3E1EA7LF000001").map(|v| v.id.clone()),
    });
    std::fs::write(out.join("env.json"), info.to_string()).expect("write env.json");
    println!("ready");
    keyway::server::signal().await;
    d.stop().await;
}

async fn seed(db: PathBuf, n: usize) {
    let store = SqlStore::open(&db).await.expect("open store");
    let t = keyway::clock::Clock::wall().now();
    use keyway::store::AccountStore;
    store
        .put_account(&AccountRecord {
            id: "acct_bench".into(),
            oem: "tesla".into(),
            owner: "bench".into(),
            status: AccountStatus::Active,
            tokens: StoredTokens::default(),
            created_at: t,
        })
        .await
        .expect("account");
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        batch.push(VehicleRecord {
            id: format!("veh_bench{i:09}").into(),
            account_id: "acct_bench".into(),
            tenant: "bench".into(),
            oem: "tesla".into(),
            oem_id: format!("5YJ3E1EA0LF{i:09}"),
            vin: Some(format!("5YJ3E1EA0LF{i:09}")),
            display_name: Some(format!("Bench car {i}")),
            model: Some("Model 3".into()),
            year: Some(2020),
            last_locked: None,
            capabilities: None,
        });
        if batch.len() == 10_000 || i + 1 == n {
            store.import_vehicles(&batch).await.expect("import");
            batch.clear();
        }
    }
    println!("{}", json!({"vehicles": n}));
}

#[tokio::main]
async fn main() {
    // `KEYWAY_BENCH_LOG=info`: log like `keyway serve` does (every request at info).
    let _logs = std::env::var("KEYWAY_BENCH_LOG")
        .ok()
        .map(|filter| keyway::logs::init(&filter));
    match Cli::parse().cmd {
        Cmd::Env {
            listen,
            data_dir,
            vehicles,
            out,
            tesla_mock_listen,
            tesla_api,
            workers,
            compare_listen,
            compare_workers,
            floor_listen,
        } => {
            env(
                listen,
                data_dir,
                vehicles,
                out,
                tesla_mock_listen,
                tesla_api,
                Serving {
                    workers,
                    compare: compare_listen.map(|a| (a, compare_workers)),
                    floor: floor_listen,
                },
            )
            .await
        }
        Cmd::Load {
            url,
            paths,
            rate,
            duration,
            headers,
        } => {
            load(
                url,
                read_paths(&paths),
                rate,
                duration,
                parse_headers(&headers),
            )
            .await
        }
        Cmd::Burst {
            url,
            paths,
            n,
            method,
            concurrency,
            headers,
        } => {
            burst(
                url,
                read_paths(&paths),
                n,
                method,
                concurrency,
                parse_headers(&headers),
            )
            .await
        }
        Cmd::Seed { db, vehicles } => seed(db, vehicles).await,
    }
}
