//! OpenAPI links: from each operation that creates or lists an object to the
//! operations that take its id, so a client generator (and schemathesis's stateful
//! phase) can follow real ids. Accounts are left unlinked on purpose: following a
//! listed account to `DELETE` would unlink the owner's cars mid-run.

use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::{OpenApi, RefOr};

/// (from operation, its answer's status, the id's place in that answer, to operations,
/// how the id is passed).
pub(super) const LINKS: &[(&str, &str, &str, &[&str], &str)] = &[
    (
        "listVehicles",
        "200",
        "$response.body#/vehicles/0/id",
        &[
            "getVehicle",
            "getVehicleLocation",
            "getVehicleSecurity",
            "getVehicleState",
            "lockVehicle",
            "unlockVehicle",
        ],
        "id",
    ),
    (
        "listVehicles",
        "200",
        "$response.body#/vehicles/0/id",
        &["listGrants"],
        "vehicle_id",
    ),
    (
        "getVehicle",
        "200",
        "$response.body#/id",
        &[
            "getVehicleLocation",
            "getVehicleSecurity",
            "getVehicleState",
            "lockVehicle",
            "unlockVehicle",
        ],
        "id",
    ),
    (
        "lockVehicle",
        "202",
        "$response.body#/id",
        &["getCommand"],
        "id",
    ),
    (
        "lockVehicle",
        "200",
        "$response.body#/id",
        &["getCommand"],
        "id",
    ),
    (
        "unlockVehicle",
        "202",
        "$response.body#/id",
        &["getCommand", "acknowledgeCommand"],
        "id",
    ),
    (
        "unlockVehicle",
        "200",
        "$response.body#/id",
        &["getCommand", "acknowledgeCommand"],
        "id",
    ),
    (
        "createGrant",
        "201",
        "$response.body#/id",
        &["getGrant", "revokeGrant", "unlockGrant", "completeGrant"],
        "id",
    ),
    (
        "unlockGrant",
        "202",
        "$response.body#/id",
        &["getCommand"],
        "id",
    ),
    (
        "subscribeWebhook",
        "201",
        "$response.body#/id",
        &["unsubscribeWebhook", "listWebhookDeliveries"],
        "id",
    ),
];

/// Adds [`LINKS`] to the answers of `doc`'s operations.
pub fn add(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [item.get.as_mut(), item.post.as_mut(), item.delete.as_mut()];
        for op in operations.into_iter().flatten() {
            let Some(from) = op.operation_id.clone() else {
                continue;
            };
            for (source, status, value, targets, param) in LINKS {
                if *source != from {
                    continue;
                }
                let Some(RefOr::T(response)) = op.responses.responses.get_mut(*status) else {
                    continue;
                };
                for target in *targets {
                    let link = LinkBuilder::new()
                        .operation_id(*target)
                        .parameter(*param, *value)
                        .build();
                    response
                        .links
                        .insert(format!("{target}By{}", title(param)), RefOr::T(link));
                }
            }
        }
    }
}

/// `vehicle_id` → `VehicleId`.
fn title(param: &str) -> String {
    param
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}
