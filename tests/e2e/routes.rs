//! One car, two routes: a Tesla linked directly and through Smartcar is one vehicle.
//! Reads use the preferred route and fall back to the other when it fails; a command
//! goes through the first-linked route only, and when that route fails it is never sent
//! through the other; a tenant may prefer the aggregator for reads.

use std::time::Duration;

use hyper::Method;
use keyway_adapter::mock::{Action, Fault};
use serde_json::json;

use crate::common::DemoMocks;
use crate::common::{Answer, Env};

const VIN: &str = "5YJ3E1EA7LF000001";

/// The Tesla, and the same car behind Smartcar (with a car of its own).
fn fleet() -> String {
    json!({
        "tesla": {"account": "owner", "vehicles": [
            {"id": 100021, "vin": VIN, "display_name": "Blue Thunder", "account": "owner",
             "state": "online", "locked": true, "latitude": 52.520008, "longitude": 13.404954,
             "heading": 289}
        ]},
        "smartcar": {"account": "owner", "vehicles": [
            {"vin": VIN, "model": "Model 3", "year": 2020, "account": "owner", "locked": true,
             "latitude": 52.520008, "longitude": 13.404954, "heading": 289},
            {"vin": "SADHA2B18N1000001", "model": "I-PACE", "year": 2022, "account": "owner",
             "locked": true, "latitude": 51.50735, "longitude": -0.12776, "heading": 90}
        ]}
    })
    .to_string()
}

async fn two_routes(prefer_smartcar: bool) -> Env {
    Env::builder()
        .mocks(&["tesla", "smartcar"])
        .fleet(&fleet())
        .configure(move |c| {
            // The demo's service is its own tenant (its token's `sub`).
            if prefer_smartcar {
                c.routes
                    .tenants
                    .insert("demo-delivery-service".into(), vec!["smartcar".into()]);
            }
        })
        .start()
        .await
}

async fn read(env: &Env, car: &str, what: &str) -> Answer {
    env.send(
        Method::GET,
        &format!("/v1/vehicles/{car}/{what}"),
        Some(&env.demo.token),
        &[("cache-control", "max-age=0")],
        None,
    )
    .await
}

fn smartcar_requests(env: &Env, method: &str) -> usize {
    let smartcar: &keyway_smartcar::SmartcarMock = env.demo.mock("smartcar");
    smartcar
        .journal
        .entries()
        .iter()
        .filter(|e| e.method == method && e.path.ends_with("/security"))
        .count()
}

#[tokio::test]
async fn a_car_linked_twice_is_one_vehicle_read_through_the_route_that_answers() {
    let env = two_routes(false).await;
    let list = env.get("/v1/vehicles", Some(&env.demo.token)).await;
    let cars = list.json["vehicles"].as_array().unwrap();
    assert_eq!(
        cars.len(),
        2,
        "the Tesla once, and the Jaguar: {:#}",
        list.json
    );
    let car = cars
        .iter()
        .find(|v| v["vin"] == VIN)
        .expect("the Tesla is listed");
    assert_eq!(car["oem"], "tesla", "the first-linked route is the vehicle");
    let id = car["id"].as_str().unwrap().to_string();

    // Its routes: Tesla (commands go there) and Smartcar.
    let one = env
        .get(&format!("/v1/vehicles/{id}"), Some(&env.demo.token))
        .await;
    let routes = one.json["routes"].as_array().unwrap();
    let oems: Vec<_> = routes.iter().map(|r| r["oem"].clone()).collect();
    assert_eq!(oems, [json!("tesla"), json!("smartcar")], "{:#}", one.json);
    assert_eq!(routes[0]["commands"], true);
    assert_eq!(routes[1]["commands"], false);
    let smartcar_record = routes[1]["vehicle_id"].as_str().unwrap().to_string();

    let healthy = read(&env, &id, "location").await;
    assert_eq!(healthy.status, 200, "{:#}", healthy.json);
    assert_eq!(healthy.json["route"], "tesla");

    // The Tesla route fails: reads come through Smartcar.
    env.demo.tesla().faults.add(Fault::on(
        "/api/1/vehicles",
        Action::Status {
            status: 503,
            body: None,
            retry_after: None,
        },
    ));
    for what in ["location", "security", "location"] {
        let started = std::time::Instant::now();
        let a = read(&env, &id, what).await;
        assert_eq!(a.status, 200, "{what}: {:#}", a.json);
        assert_eq!(a.json["route"], "smartcar", "{what}");
        assert_eq!(a.json["vehicle_id"], id.as_str());
        println!(
            "{what} with the Tesla route down: 200 through {} in {:?}",
            a.json["route"],
            started.elapsed()
        );
    }
    // The other route's record stands for the car.
    let by_route = read(&env, &smartcar_record, "location").await;
    assert_eq!(
        by_route.json["vehicle_id"],
        id.as_str(),
        "{:#}",
        by_route.json
    );

    // A command goes through the Tesla route only: it fails there, and nothing is sent
    // to the car through Smartcar.
    let before = smartcar_requests(&env, "POST");
    let cmd = env
        .send(
            Method::POST,
            &format!("/v1/vehicles/{id}/unlock"),
            Some(&env.demo.token),
            &[("prefer", "wait=10")],
            None,
        )
        .await;
    println!(
        "unlock with the Tesla route down: {} {}",
        cmd.status, cmd.json["code"]
    );
    assert_ne!(cmd.json["status"], "succeeded", "{:#}", cmd.json);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        smartcar_requests(&env, "POST"),
        before,
        "never through the other route"
    );
    assert!(
        env.demo
            .tesla()
            .journal
            .entries()
            .iter()
            .any(|e| e.method == "POST"),
        "the Tesla route was tried"
    );
}

#[tokio::test]
async fn a_tenant_may_prefer_the_aggregator_for_reads_while_commands_stay_direct() {
    let env = two_routes(true).await;
    let id = env.by_vin(VIN).id.clone();
    let one = env
        .get(&format!("/v1/vehicles/{id}"), Some(&env.demo.token))
        .await;
    let routes = one.json["routes"].as_array().unwrap();
    assert_eq!(routes[0]["oem"], "smartcar", "read first: {:#}", one.json);
    assert_eq!(routes[1]["oem"], "tesla");
    assert_eq!(
        routes[1]["commands"], true,
        "commands stay on the first-linked route"
    );
    let a = read(&env, &id, "security").await;
    assert_eq!(a.json["route"], "smartcar", "{:#}", a.json);
    let before = smartcar_requests(&env, "POST");
    let cmd = env
        .send(
            Method::POST,
            &format!("/v1/vehicles/{id}/lock"),
            Some(&env.demo.token),
            &[("prefer", "wait=30")],
            None,
        )
        .await;
    assert_eq!(cmd.json["status"], "succeeded", "{:#}", cmd.json);
    assert_eq!(smartcar_requests(&env, "POST"), before);
}
