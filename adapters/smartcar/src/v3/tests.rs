use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../fixtures/smartcar/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn connections_read_in_either_shape() {
    let (all, more) = parse_connections(&fixture("v3_connections.json")).unwrap();
    assert!(!more, "links.next is null");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].vehicle_id, "0f7c2a41-5d3e-4b8a-9c61-2e7d4f1a8b03");
    assert_eq!(
        all[0].user_id.as_deref(),
        Some("725146a3-69f4-46c8-965d-54b3b6f81eb7")
    );
    assert_eq!(all[0].connected_at.unwrap().unix_timestamp(), 1_764_524_455);
    // v2.0's management list: `connections[]` and a cursor for the next page.
    let v2 = br#"{"connections": [{"userId": "u1", "vehicleId": "v1", "connectedAt": "2026-01-02T03:04:05Z", "mode": "live"}], "paging": {"cursor": "abc"}}"#;
    let (all, more) = parse_connections(v2).unwrap();
    assert!(more);
    assert_eq!(all[0].vehicle_id, "v1");
    // A relationship names the car; an entry without a car is left out.
    let related = br#"{"data": [{"type": "connection", "relationships": {"vehicle": {"data": {"id": "v9"}}}}, {"type": "connection"}], "links": {"next": "/connections?page=2"}}"#;
    let (all, more) = parse_connections(related).unwrap();
    assert_eq!(
        (all.len(), all[0].vehicle_id.as_str(), more),
        (1, "v9", true)
    );
    assert!(parse_connections(br#"{"vehicles": []}"#).is_err());
    // A capture of the connections list replays as the vehicle list: the cars, not the
    // connections' own ids.
    let (ids, more) =
        crate::adapter::parse_vehicle_page(&fixture("v3_connections.json"), 0).unwrap();
    assert_eq!(ids, ["0f7c2a41-5d3e-4b8a-9c61-2e7d4f1a8b03"]);
    assert!(!more);
}

#[test]
fn a_vehicle_reads_its_attributes() {
    let v = parse_vehicle("0f7c", &fixture("v3_vehicle.json")).unwrap();
    assert_eq!(v.model.as_deref(), Some("Jaguar I-PACE"));
    assert_eq!(v.year, Some(2022));
    assert_eq!(v.vin, None, "the documented attributes carry no VIN");
    let with_vin = br#"{"data": {"id": "x", "type": "vehicle", "attributes": {"make": "TESLA", "model": "Model 3", "year": "2021", "vin": "5YJ3E1EA7MF000001"}}}"#;
    let v = parse_vehicle("x", with_vin).unwrap();
    assert_eq!(v.vin.as_deref(), Some("5YJ3E1EA7MF000001"));
    assert_eq!(v.year, Some(2021));
    assert!(parse_vehicle("x", br#"{"id": "x"}"#).is_err());
}

#[test]
fn a_command_execution_says_done_running_failed_or_nothing() {
    assert_eq!(
        parse_execution(200, &fixture("v3_command_success.json")),
        Ok(Sent::Completed)
    );
    let running = parse_execution(202, &fixture("v3_command_running.json"));
    assert!(
        matches!(&running, Ok(Sent::Pending(p)) if p.handle == "exec_9b2d5f7e31"),
        "{running:?}"
    );
    // A 202 whose body cannot be read is still running: Smartcar has it.
    assert!(matches!(
        parse_execution(202, b"<html>"),
        Ok(Sent::Pending(_))
    ));
    let failed = br#"{"data": {"id": "e", "type": "command-execution", "attributes": {"status": {"value": "FAILED"}}}}"#;
    assert!(matches!(
        parse_execution(200, failed),
        Err(OemError::Refused { .. })
    ));
    // A 200 that says nothing readable leaves the outcome open.
    assert!(matches!(
        parse_execution(200, b"{}"),
        Err(OemError::InvalidResponse {
            delivered: Delivered::Unknown,
            ..
        })
    ));
    // The v2.0 parser reads a v3 answer too (captures of either version replay).
    assert_eq!(
        crate::adapter::parse_action(&fixture("v3_command_success.json")),
        Ok(Sent::Completed)
    );
}

#[tokio::test(start_paused = true)]
async fn the_application_token_is_kept_until_due_and_renewed_when_refused() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let fetched = Arc::new(AtomicUsize::new(0));
    let seen = fetched.clone();
    let http = Http::from_fn(move |req: Request<Bytes>| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        let form = String::from_utf8_lossy(req.body()).to_string();
        async move {
            assert!(form.contains("grant_type=client_credentials"), "{form}");
            assert!(form.contains("client_secret=s3cret"), "{form}");
            let body = format!(
                r#"{{"access_token": "app-{n}", "token_type": "Bearer", "expires_in": 3600}}"#
            );
            Ok(Response::new(Bytes::from(body)))
        }
    });
    let app = AppToken::new(AppCredentials {
        token_url: "http://127.0.0.1:9/oauth2/token".into(),
        client_id: "keyway".into(),
        client_secret: Secret::new("s3cret"),
    });
    let first = app.get(&http, None).await.unwrap();
    assert_eq!(first.expose(), "app-0");
    assert_eq!(
        app.get(&http, None).await.unwrap().expose(),
        "app-0",
        "kept"
    );
    let renewed = app.get(&http, Some(&first)).await.unwrap();
    assert_eq!(
        renewed.expose(),
        "app-1",
        "a refused token is not used again"
    );
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(app.get(&http, None).await.unwrap().expose(), "app-2", "due");
    assert_eq!(fetched.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn refused_client_credentials_are_the_operators_to_fix() {
    let http = Http::from_fn(|_req: Request<Bytes>| async {
        let mut resp = Response::new(Bytes::from_static(br#"{"error": "invalid_client"}"#));
        *resp.status_mut() = http::StatusCode::UNAUTHORIZED;
        Ok(resp)
    });
    let app = AppToken::new(AppCredentials {
        token_url: "http://127.0.0.1:9/oauth2/token".into(),
        client_id: "keyway".into(),
        client_secret: Secret::new("wrong"),
    });
    let e = app.get(&http, None).await.unwrap_err();
    assert!(matches!(e, OemError::ClientRejected { .. }), "{e:?}");
}
