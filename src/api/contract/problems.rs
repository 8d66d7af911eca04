//! The problem answers of a route, from the error types its handler can return: a
//! route names them in its `#[utoipa::path]` as `Problems<(Edge, VehicleError)>`, and
//! each error type's [`Codes`] (written beside its classification) says what it can
//! become. The codes are grouped by HTTP status; each status answers the `Problem`
//! schema with `code` narrowed to the codes that status carries on that route.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use utoipa::IntoResponses;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

use crate::api::error::status;
use crate::api::problem::PROBLEM_JSON;
use crate::error::{Code, Codes};

/// The problem answers of a route whose handler can fail with `E` (a [`Codes`] type or
/// a tuple of them).
pub struct Problems<E>(PhantomData<E>);

/// What every authenticated route can answer before or around its handler: the body
/// read (`400`, `408`, `413`), the caller's token and scope (`401`, `403`), its limits
/// (`429`), load shedding (`503`), the request timeout (`504`) and keyway's own failure.
pub struct Edge;

impl Codes for Edge {
    fn codes() -> Vec<Code> {
        let mut all = Public::codes();
        all.extend([Code::Unauthenticated, Code::Forbidden, Code::RateLimited]);
        all
    }
}

/// What a route without a caller token can answer around its handler.
pub struct Public;

impl Codes for Public {
    fn codes() -> Vec<Code> {
        vec![
            Code::InvalidRequest,
            Code::PayloadTooLarge,
            Code::RequestTimeout,
            Code::Overloaded,
            Code::UpstreamTimeout,
            Code::Internal,
        ]
    }
}

/// What a JSON request body adds: not JSON (`415`), not the schema (`400`).
pub struct JsonBody;

impl Codes for JsonBody {
    fn codes() -> Vec<Code> {
        vec![Code::UnsupportedMediaType, Code::InvalidRequest]
    }
}

/// The codes of `E`, grouped by status, each group sorted and without repeats.
pub fn by_status<E: Codes>() -> BTreeMap<u16, Vec<Code>> {
    let mut groups: BTreeMap<u16, Vec<Code>> = BTreeMap::new();
    for code in E::codes() {
        let group = groups.entry(status(code).as_u16()).or_default();
        if !group.contains(&code) {
            group.push(code);
        }
    }
    for group in groups.values_mut() {
        group.sort_by_key(|c| c.as_str());
    }
    groups
}

impl<E: Codes> IntoResponses for Problems<E> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        by_status::<E>()
            .into_iter()
            .map(|(status, codes)| {
                let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
                let narrowed = ObjectBuilder::new().property(
                    "code",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(names.clone())),
                );
                let schema = AllOfBuilder::new()
                    .item(Ref::from_schema_name("Problem"))
                    .item(narrowed)
                    .build();
                let description = format!(
                    "{}: {}",
                    http::StatusCode::from_u16(status)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("Problem"),
                    names.join(", ")
                );
                let response = ResponseBuilder::new()
                    .description(description)
                    .content(
                        PROBLEM_JSON,
                        ContentBuilder::new()
                            .schema(Some(Schema::AllOf(schema)))
                            .build(),
                    )
                    .build();
                (status.to_string(), RefOr::T(response))
            })
            .collect()
    }
}

/// Moves every problem answer of `doc`'s operations into `components.responses`, one
/// per distinct (status, codes) pair, named `Problem<status>-<codes' digest>`, and refers
/// to it: 27 shared answers instead of some 300 copies.
pub fn share(doc: &mut utoipa::openapi::OpenApi) {
    use sha2::{Digest, Sha256};
    let mut shared = BTreeMap::new();
    for item in doc.paths.paths.values_mut() {
        let operations = [item.get.as_mut(), item.post.as_mut(), item.delete.as_mut()];
        for op in operations.into_iter().flatten() {
            for (status, answer) in op.responses.responses.iter_mut() {
                let RefOr::T(response) = answer else {
                    continue;
                };
                if !response.content.contains_key(PROBLEM_JSON) {
                    continue;
                }
                // The description lists the codes: the same text is the same answer.
                let digest = hex::encode(Sha256::digest(response.description.as_bytes()));
                let name = format!("Problem{status}-{}", &digest[..8]);
                shared
                    .entry(name.clone())
                    .or_insert_with(|| response.clone());
                *answer = RefOr::Ref(Ref::from_response_name(name));
            }
        }
    }
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, response) in shared {
        components.responses.insert(name, RefOr::T(response));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_group_by_their_status() {
        let groups = by_status::<(Edge, JsonBody)>();
        assert_eq!(groups[&400], vec![Code::InvalidRequest]);
        assert_eq!(groups[&401], vec![Code::Unauthenticated]);
        assert_eq!(groups[&415], vec![Code::UnsupportedMediaType]);
        assert!(!groups.contains_key(&404));
        let answers = Problems::<(Edge, JsonBody)>::responses();
        assert_eq!(answers.len(), groups.len());
    }
}
