//! The OpenAPI 3 document of the JSON API (`GET /api/v1/openapi.json`),
//! written by hand and embedded. `tests/api.rs` checks that every path it
//! lists is served, and `api-test/run.sh` runs schemathesis against it.

use std::sync::Arc;

use floorwatch_protocol::Id;
use poem::web::Data;
use poem::{handler, IntoResponse, Response};
use serde_json::Value;

use crate::server::AppState;

/// The document as written, before [`served_document`] adds the roster.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// JSON pointer to the `assignee` property of the reassign request.
const ASSIGNEE_POINTER: &str = "/components/schemas/ReassignRequest/properties/assignee";

/// Builds the served document: [`OPENAPI_JSON`] with the roster's
/// technician ids as the `enum` of the reassign request's `assignee`.
/// Reassign answers any other id with 422 `unknown_technician`, and a
/// client or API tester can only know the valid ids from the document.
pub fn served_document(technicians: &[Id]) -> String {
    // NOTE: the unit tests below parse the embedded document and find the
    // `assignee` property, so neither `expect` fires in a tested build.
    let mut document: Value =
        serde_json::from_str(OPENAPI_JSON).expect("the embedded openapi.json is valid JSON");
    let assignee = document
        .pointer_mut(ASSIGNEE_POINTER)
        .and_then(Value::as_object_mut)
        .expect("openapi.json defines ReassignRequest.assignee");
    let ids = technicians.iter().map(|id| id.as_str().into()).collect();
    assignee.insert("enum".to_owned(), Value::Array(ids));
    document.to_string()
}

/// Serves the OpenAPI document.
#[handler]
pub fn openapi(Data(state): Data<&Arc<AppState>>) -> Response {
    state
        .openapi
        .clone()
        .with_content_type("application/json")
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_openapi_3_json() {
        let document: Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3."));
        assert!(document["paths"]["/api/v1/tasks"]["get"].is_object());
    }

    #[test]
    fn served_document_lists_technicians() {
        let technicians = [Id::parse("alex").unwrap(), Id::parse("sam").unwrap()];

        let served: Value = serde_json::from_str(&served_document(&technicians)).unwrap();

        let assignee = served.pointer(ASSIGNEE_POINTER).unwrap();
        assert_eq!(assignee["enum"], serde_json::json!(["alex", "sam"]));
        assert_eq!(assignee["pattern"], "^[A-Za-z0-9_-]{1,64}$");
    }

    #[test]
    fn every_reference_resolves() {
        let document: Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        let mut pending = vec![&document];
        let mut references = 0;
        while let Some(value) = pending.pop() {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        let pointer = target.strip_prefix('#').unwrap();
                        assert!(document.pointer(pointer).is_some(), "{target}");
                        references += 1;
                    }
                    pending.extend(map.values());
                }
                Value::Array(items) => pending.extend(items),
                _ => {}
            }
        }
        assert!(references > 10, "found {references} references");
    }
}
