//! The OpenAPI 3 document of the JSON API (`GET /api/v1/openapi.json`),
//! written by hand and embedded. `tests/api.rs` checks that every path it
//! lists is served.

use poem::{handler, IntoResponse, Response};

/// The document, as served.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// Serves the OpenAPI document.
#[handler]
pub fn openapi() -> Response {
    OPENAPI_JSON
        .with_content_type("application/json")
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_openapi_3_json() {
        let document: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3."));
        assert!(document["paths"]["/api/v1/tasks"]["get"].is_object());
    }
}
