//! Unit tests of the parent module.

use super::*;
use keyway_adapter::Secret;

fn auth() -> AuthConfig {
    AuthConfig {
        issuer: "https://id.test".into(),
        audience: "keyway".into(),
        algorithm: JwtAlgorithm::HS256,
        hs256_secret: Some(Secret::new("0123456789abcdef0123456789abcdef")),
        public_key_file: None,
        jwks_file: None,
        leeway: std::time::Duration::from_secs(0),
    }
}

fn token(scopes: &[&str]) -> String {
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    mint_hs256(
        &auth(),
        &DevToken {
            sub: "svc",
            tenant: None,
            scopes: &scopes,
            vehicles: None,
            ttl_s: 60,
        },
    )
    .unwrap()
}

#[test]
fn minted_token_verifies_with_scopes() {
    let v = Verifier::from_config(&auth()).unwrap();
    let c = v.verify(&token(&["location:read", "bogus:scope"])).unwrap();
    assert_eq!(c.sub, "svc");
    assert!(c.has(Scope::LocationRead));
    assert!(!c.has(Scope::CommandsUnlock));
    assert!(c.require(Scope::CommandsUnlock).is_err());
}

fn hs256(claims: serde_json::Value) -> String {
    let key = EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
}

fn claims() -> serde_json::Value {
    let now = jsonwebtoken::get_current_timestamp();
    serde_json::json!({"sub": "svc", "iss": "https://id.test", "aud": "keyway",
        "exp": now + 60, "scope": "admin"})
}

#[test]
fn the_tenant_is_the_tenant_claim_else_the_sub() {
    let v = Verifier::from_config(&auth()).unwrap();
    assert_eq!(v.verify(&token(&["admin"])).unwrap().tenant, "svc");
    let mut c = claims();
    c["tenant"] = "acme".into();
    let caller = v.verify(&hs256(c)).unwrap();
    assert_eq!(
        (caller.sub.as_str(), caller.tenant.as_str()),
        ("svc", "acme")
    );
    assert_ne!(
        caller.key_scope(),
        Caller::new("svc", &[], None).key_scope()
    );
    for bad in [
        serde_json::json!(""),
        serde_json::json!(["acme"]),
        serde_json::json!("a\nb"),
    ] {
        let mut c = claims();
        c["tenant"] = bad.clone();
        assert!(v.verify(&hs256(c)).is_err(), "tenant {bad} accepted");
    }
}

#[test]
fn iss_must_be_a_string() {
    let v = Verifier::from_config(&auth()).unwrap();
    assert!(v.verify(&hs256(claims())).is_ok());
    let mut c = claims();
    c["iss"] = serde_json::json!(["https://id.test"]);
    assert_eq!(
        v.verify(&hs256(c)).unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut c = claims();
    c["iss"] = serde_json::json!(["https://id.test", "https://evil.test"]);
    assert!(v.verify(&hs256(c)).is_err());
    let mut c = claims();
    c["sub"] = "svc\r\nx".into();
    assert!(v.verify(&hs256(c)).is_err());
}

#[test]
fn admin_implies_everything() {
    let c = Caller::new("a", &[Scope::Admin], None);
    assert!(Scope::ALL.iter().all(|s| c.has(*s)));
}

#[test]
fn vehicle_restriction() {
    let c = Caller::new("a", &[Scope::Admin], Some(vec!["veh_1".into()]));
    assert!(c.may_touch("veh_1"));
    assert!(!c.may_touch("veh_2"));
}

#[test]
fn wrong_secret_and_alg_none_are_rejected() {
    let mut other = auth();
    other.hs256_secret = Some(Secret::new("ffffffffffffffffffffffffffffffff"));
    let v = Verifier::from_config(&other).unwrap();
    let e = v.verify(&token(&["admin"])).unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    // {"alg":"none"} with the same claims and an empty signature.
    let t = token(&["admin"]);
    let payload = t.split('.').nth(1).unwrap();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    let v = Verifier::from_config(&auth()).unwrap();
    assert_eq!(v.verify(&none).unwrap_err().code(), Code::Unauthenticated);
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/auth")
        .join(name)
}

fn es256_token(kid: Option<&str>) -> String {
    let key = std::fs::read(fixture("test-es256.key.pem")).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = kid.map(str::to_string);
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({
        "sub": "svc", "scope": ["vehicles:read"], "iss": "https://id.test",
        "aud": "keyway", "exp": now + 60, "nbf": now - 1,
    });
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_pem(&key).unwrap()).unwrap()
}

fn es256_auth() -> AuthConfig {
    AuthConfig {
        algorithm: JwtAlgorithm::ES256,
        hs256_secret: None,
        ..auth()
    }
}

#[test]
fn es256_with_a_pem_public_key() {
    let c = AuthConfig {
        public_key_file: Some(fixture("test-es256.pub.pem")),
        ..es256_auth()
    };
    let v = Verifier::from_config(&c).unwrap();
    let caller = v.verify(&es256_token(None)).unwrap();
    assert!(caller.has(Scope::VehiclesRead));
    // An HS256 token is refused by an ES256 verifier, whatever its signature.
    assert_eq!(
        v.verify(&token(&["admin"])).unwrap_err().code(),
        Code::Unauthenticated
    );
}

#[test]
fn es256_with_a_jwks_chooses_the_key_by_kid() {
    let c = AuthConfig {
        jwks_file: Some(fixture("test-jwks.json")),
        ..es256_auth()
    };
    let v = Verifier::from_config(&c).unwrap();
    assert_eq!(
        v.verify(&es256_token(Some("test-es256"))).unwrap().sub,
        "svc"
    );
    let e = v.verify(&es256_token(Some("unknown"))).unwrap_err();
    assert!(e.to_string().contains("kid"), "{e}");
    assert!(v.verify(&es256_token(None)).is_err());
}

#[test]
fn unreadable_key_file_names_the_field() {
    let c = AuthConfig {
        public_key_file: Some("/nonexistent/key.pem".into()),
        ..es256_auth()
    };
    let e = Verifier::from_config(&c).unwrap_err().to_string();
    assert!(e.contains("auth.public_key_file"), "{e}");
}

#[test]
fn a_verified_token_is_reused_only_inside_its_window_and_a_refused_one_never() {
    let v = Verifier::from_config(&auth()).unwrap();
    let t = token(&["vehicles:read"]);
    assert_eq!(v.verify(&t).unwrap().sub, "svc");
    let kept = v
        .verified
        .get(t.as_str())
        .expect("a verified token is kept");
    let now = jsonwebtoken::get_current_timestamp();
    assert!(kept.reusable(now));
    // At or after `exp` (and before `nbf`) the full check runs again.
    assert!(!kept.reusable(kept.expires));
    let early = Verified {
        not_before: now + 10,
        ..Verified {
            caller: kept.caller.clone(),
            not_before: 0,
            expires: now + 60,
        }
    };
    assert!(!early.reusable(now));
    // The reused caller is the verified one itself, not a copy.
    assert!(Arc::ptr_eq(&v.verify(&t).unwrap(), &kept.caller));

    // A token that fails (expired; wrong signature) is never kept.
    let mut c = claims();
    c["exp"] = serde_json::json!(now - 10);
    let expired = hs256(c);
    assert!(v.verify(&expired).is_err());
    assert!(v.verified.get(expired.as_str()).is_none());
    let last = if t.ends_with('x') { "y" } else { "x" };
    let forged = format!("{}{last}", &t[..t.len() - 1]);
    assert!(v.verify(&forged).is_err());
    assert!(v.verified.get(forged.as_str()).is_none());
}
