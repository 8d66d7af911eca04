//! Criterion micro-benchmarks of the per-request hot spots that do not touch the
//! network: caller JWT verification and Tesla answer parsing.

use criterion::{Criterion, criterion_group, criterion_main};
use keyway::auth::{DevToken, Verifier, mint_hs256};
use keyway::config::{AuthConfig, JwtAlgorithm};
use keyway_adapter::Secret;

fn jwt(c: &mut Criterion) {
    let auth = AuthConfig {
        issuer: "bench".into(),
        audience: "keyway".into(),
        algorithm: JwtAlgorithm::HS256,
        hs256_secret: Some(Secret::new("0123456789abcdef0123456789abcdef")),
        public_key_file: None,
        jwks_file: None,
        leeway: std::time::Duration::from_secs(30),
    };
    let scopes = vec!["vehicles:read".to_string(), "location:read".to_string()];
    let token = mint_hs256(
        &auth,
        &DevToken {
            sub: "svc",
            tenant: None,
            scopes: &scopes,
            vehicles: None,
            ttl_s: 3600,
        },
    )
    .unwrap();
    let v = Verifier::from_config(&auth).unwrap();
    c.bench_function("jwt_verify_hs256", |b| {
        b.iter(|| v.verify(std::hint::black_box(&token)).unwrap())
    });
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../fixtures/tesla/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn parsing(c: &mut Criterion) {
    let location = fixture("vehicle_data_location.json");
    let state = fixture("vehicle_data_state.json");
    let vehicles = fixture("vehicles.json");
    c.bench_function("tesla_parse_location", |b| {
        b.iter(|| keyway_tesla::adapter::parse_location(std::hint::black_box(&location)).unwrap())
    });
    c.bench_function("tesla_parse_security", |b| {
        b.iter(|| keyway_tesla::adapter::parse_security(std::hint::black_box(&state)).unwrap())
    });
    c.bench_function("tesla_parse_vehicles", |b| {
        b.iter(|| keyway_tesla::adapter::parse_vehicles(std::hint::black_box(&vehicles)).unwrap())
    });
}

criterion_group!(benches, jwt, parsing);
criterion_main!(benches);
