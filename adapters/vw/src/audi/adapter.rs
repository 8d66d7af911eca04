//! What Audi declares, and its vehicle list. Sources: `fixtures/audi/SOURCES.md`.
//!
//! - **Login**: RFC 8628's device authorization grant at the Volkswagen Group's
//!   identity server (`/oidc/v1/device_authorization`, then `/oidc/v1/token` with the
//!   device code), for the myAudi app's public client — the login the public clients
//!   moved to in 2026, when the app's other logins came to need the app's device
//!   attestation. The tokens refresh at the BFF (`/auth/v1/idk/oidc/token`, RFC 6749's
//!   form with the client id, no secret).
//! - **Cars**: `POST /vgql/v1/graphql` with the app's `userVehicles` query at myAudi's
//!   API (`app-api.live-my.audi.com`, the vehicles base): each car's VIN, nickname,
//!   model (`vehicle.media.longName`, else `shortName`) and model year
//!   (`vehicle.core.modelYear`). GraphQL answers its errors `200` with `errors`.
//!   The list says nothing of remote access: a car without it is refused by the BFF at
//!   the command (`403`), certainly before anything ran.
//! - **Everything else** is the BFF's, as for Volkswagen: lock state from
//!   `selectivestatus?jobs=access`, the parking position, lock and unlock with the
//!   owner's S-PIN (`{"spin"}`) and their outcome in the access job's requests.

use std::time::Duration;

use crate::VwAdapter;
use crate::adapter::{Brand, List};
use keyway_adapter::http::parse_body;
use keyway_adapter::{
    AdapterInfo, Capability, ClientAuth, CommandMode, Delivered, Limits, Linking, OAuthProfile,
    OemError, OemVehicle, RefreshGrant,
};
use serde::Deserialize;

/// What the Audi adapter declares.
pub static INFO: AdapterInfo = AdapterInfo {
    oem: "audi",
    make: "Audi",
    capabilities: &[
        Capability::Locate,
        Capability::Security,
        Capability::Lock,
        Capability::Unlock,
    ],
    command_mode: CommandMode::Async,
    location_mode: CommandMode::Sync,
    oauth: OAuthProfile {
        // No browser redirect: the device grant (below) starts the login.
        authorize_path: "/oidc/v1/device_authorization",
        // The refresh grant at the BFF (form: grant_type, refresh_token, client_id).
        token_path: "/auth/v1/idk/oidc/token",
        scopes: &[
            "openid", "profile", "email", "address", "phone", "vin", "badge", "mbb", "cars",
            "dealers",
        ],
        client_auth: ClientAuth::Body,
        refresh: RefreshGrant::Form,
        rotating_refresh: true,
        default_access_ttl: Duration::from_secs(3600),
        token_exchange: false,
        linking: Linking::Device {
            authorization_path: "/oidc/v1/device_authorization",
            token_path: "/oidc/v1/token",
        },
    },
    // Audi publishes no limits; the BFF's are Volkswagen's. Defaults an operator may
    // change.
    limits: Limits {
        requests: &[(60, 60)],
        commands: &[(10, 60)],
    },
    api_key_header: None,
    // Lock and unlock take the owner's S-PIN.
    owner_pin: true,
    timing: crate::adapter::INFO.timing,
    exchanges: &super::exchanges::EXCHANGES,
};

/// The myAudi app's vehicle list query (the fields the public clients ask for).
pub const USER_VEHICLES: &str = "query vehicleList {\n userVehicles {\n vin\n mappingVin\n vehicle { core { modelYear\n }\n media { shortName\n longName }\n }\n csid\n commissionNumber\n type\n devicePlatform\n mbbConnect\n userRole {\n role\n }\n vehicle {\n classification {\n driveTrain\n }\n }\n nickname\n }\n}";

/// Audi on the BFF: the GraphQL list at the vehicles base.
pub static AUDI: Brand = Brand {
    info: &INFO,
    list: List {
        path: "/vgql/v1/graphql",
        query: Some(USER_VEHICLES),
        parse: parse_user_vehicles,
    },
};

/// An Audi adapter: the BFF at `base`, myAudi's GraphQL at `vehicles_base`.
pub fn new(base: &str, vehicles_base: &str) -> VwAdapter {
    VwAdapter::brand(&AUDI, base, vehicles_base)
}

#[derive(Deserialize)]
struct Answer {
    data: Option<Data>,
    #[serde(default)]
    errors: Vec<GraphError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    user_vehicles: Option<Vec<UserVehicle>>,
}

#[derive(Deserialize)]
struct GraphError {
    message: Option<String>,
    extensions: Option<Extensions>,
}

#[derive(Deserialize)]
struct Extensions {
    code: Option<String>,
}

impl GraphError {
    /// GraphQL's way of saying the token is not (or no longer) good.
    fn unauthenticated(&self) -> bool {
        let code = self.extensions.as_ref().and_then(|e| e.code.as_deref());
        code == Some("UNAUTHENTICATED")
            || self
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with("401"))
    }
}

#[derive(Deserialize)]
struct UserVehicle {
    vin: String,
    nickname: Option<String>,
    vehicle: Option<Details>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Details {
    core: Option<Core>,
    media: Option<Media>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Core {
    model_year: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Media {
    short_name: Option<String>,
    long_name: Option<String>,
}

/// Reads the `userVehicles` answer: every car, each assumed able to lock and unlock
/// (the list does not say; the BFF refuses one that cannot). GraphQL's `errors` (in a
/// `200`) is a stale token when it says `UNAUTHENTICATED`, else — like no
/// `userVehicles` — the backend failing to list: never an owner without cars.
pub fn parse_user_vehicles(body: &[u8]) -> Result<Vec<(OemVehicle, bool)>, OemError> {
    let a: Answer = parse_body(body, Delivered::No)?;
    let listed = a.data.and_then(|d| d.user_vehicles);
    let Some(listed) = listed.filter(|_| a.errors.is_empty()) else {
        let why: Vec<&str> = a
            .errors
            .iter()
            .filter_map(|e| e.message.as_deref())
            .collect();
        if a.errors.iter().any(GraphError::unauthenticated) {
            // A token gone stale: keyway refreshes it and asks again.
            return Err(OemError::Unauthorized {
                detail: format!("the vehicle list refused the token: {}", why.join("; ")),
            });
        }
        return Err(OemError::Upstream {
            status: 200,
            detail: format!("the vehicle list failed: {}", why.join("; ")),
            delivered: Delivered::No,
        });
    };
    Ok(listed
        .into_iter()
        .map(|c| {
            let details = c.vehicle.unwrap_or(Details {
                core: None,
                media: None,
            });
            let (short, long) = details
                .media
                .map_or((None, None), |m| (m.short_name, m.long_name));
            let year = details
                .core
                .and_then(|c| c.model_year)
                .and_then(|y| match y {
                    serde_json::Value::Number(n) => n.as_u64(),
                    serde_json::Value::String(s) => s.parse().ok(),
                    _ => None,
                })
                .and_then(|y| u16::try_from(y).ok())
                .or_else(|| keyway_adapter::vin_model_year(&c.vin));
            let vehicle = OemVehicle {
                capabilities: None,
                oem_id: c.vin.clone(),
                vin: Some(c.vin),
                display_name: c.nickname.filter(|n| !n.is_empty()).or(short.clone()),
                model: long.or(short),
                year,
            };
            (vehicle, true)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../../fixtures/audi/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn the_vehicle_list_reads_model_year_and_names() {
        let cars = parse_user_vehicles(&fixture("user_vehicles.json")).unwrap();
        assert_eq!(cars.len(), 2);
        let (q4, can) = &cars[0];
        assert!(can);
        assert_eq!(q4.vin.as_deref(), Some("WAUZZZF40RA000001"));
        assert_eq!(q4.model.as_deref(), Some("Audi Q4 45 e-tron"));
        assert_eq!(q4.display_name.as_deref(), Some("Family Q4"));
        assert_eq!(q4.year, Some(2024));
        assert_eq!(q4.capabilities, None);
        // No nickname: the short name; the year as a string reads too.
        let (a6, _) = &cars[1];
        assert_eq!(a6.display_name.as_deref(), Some("A6 Avant e-tron"));
        assert_eq!(a6.year, Some(2025));
    }

    #[test]
    fn graphql_errors_are_a_stale_token_or_the_backend_failing_not_an_empty_garage() {
        let e = parse_user_vehicles(&fixture("user_vehicles_error.json")).unwrap_err();
        assert!(matches!(e, OemError::Unauthorized { .. }), "{e:?}");
        let other = br#"{"errors": [{"message": "timeout", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}], "data": null}"#;
        let e = parse_user_vehicles(other).unwrap_err();
        assert!(matches!(e, OemError::Upstream { .. }), "{e:?}");
        let nothing = br#"{"data": {"userVehicles": null}}"#;
        assert!(parse_user_vehicles(nothing).is_err());
    }

    proptest::proptest! {
        #[test]
        fn the_list_parser_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_user_vehicles(&body);
        }
    }
}
