//! Query parameters shared by the task listing of the JSON API and of the
//! operator page: filters, sort order and page.

use poem::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::store::{SortKey, TaskQuery, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
use crate::task::TaskStatus;

/// Maximum length of a filter value; longer values match no identifier.
const MAX_FILTER_CHARS: usize = 64;

/// Raw query parameters, parsed by [`ListParams::to_query`]. Empty values
/// count as absent, so a submitted filter form with blank fields lists all.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ListParams {
    pub status: Option<String>,
    pub site: Option<String>,
    pub sensor: Option<String>,
    pub assignee: Option<String>,
    /// `opened_at` (default) or `severity`.
    pub sort: Option<String>,
    /// `desc` (default) or `asc`.
    pub order: Option<String>,
    /// Page size.
    pub limit: Option<String>,
    /// Page number, from 1.
    pub page: Option<String>,
}

impl ListParams {
    /// Converts the parameters into a [`TaskQuery`]. A `limit` above
    /// [`MAX_LIST_LIMIT`] is lowered to it; any other invalid value gives
    /// 400 `invalid_query` naming the parameter.
    pub fn to_query(&self) -> Result<TaskQuery, ApiError> {
        let status = match present(&self.status) {
            None => None,
            Some(text) => Some(TaskStatus::parse(text).ok_or_else(|| {
                invalid_query(format!(
                    "status {:?} is not one of: open, acknowledged, in_progress, completed",
                    shorten(text)
                ))
            })?),
        };
        let sort = match present(&self.sort) {
            None => SortKey::default(),
            Some(text) => SortKey::parse(text).ok_or_else(|| {
                invalid_query(format!(
                    "sort {:?} is not one of: opened_at, severity",
                    shorten(text)
                ))
            })?,
        };
        let descending = match present(&self.order) {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(text) => {
                return Err(invalid_query(format!(
                    "order {:?} is not one of: asc, desc",
                    shorten(text)
                )))
            }
        };
        let limit =
            positive("limit", present(&self.limit), DEFAULT_LIST_LIMIT)?.min(MAX_LIST_LIMIT);
        let page = positive("page", present(&self.page), 1)?;
        Ok(TaskQuery {
            status,
            site: filter(&self.site),
            sensor: filter(&self.sensor),
            assignee: filter(&self.assignee),
            sort,
            descending,
            limit,
            offset: (page - 1).saturating_mul(limit),
        })
    }
}

fn present(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

fn filter(value: &Option<String>) -> Option<String> {
    present(value).map(shorten)
}

/// Parses a positive integer of at most `i64::MAX`, the bound that the
/// OpenAPI document declares (int64), whatever the width of `usize`. A value
/// above `usize::MAX` becomes `usize::MAX`.
fn positive(name: &str, text: Option<&str>, default: usize) -> Result<usize, ApiError> {
    let Some(text) = text else {
        return Ok(default);
    };
    match text.parse::<i64>() {
        Ok(number) if number > 0 => Ok(usize::try_from(number).unwrap_or(usize::MAX)),
        _ => Err(invalid_query(format!(
            "{name} {:?} is not a positive integer",
            shorten(text)
        ))),
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(MAX_FILTER_CHARS).collect()
}

fn invalid_query(detail: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> ListParams {
        let object = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), serde_json::json!(value)))
            .collect();
        serde_json::from_value(serde_json::Value::Object(object)).unwrap()
    }

    #[test]
    fn defaults_and_clamping() {
        let query = params(&[]).to_query().unwrap();
        assert_eq!(query, TaskQuery::default());
        let query = params(&[("status", "open"), ("limit", "5000")])
            .to_query()
            .unwrap();
        assert_eq!(query.status, Some(TaskStatus::Open));
        assert_eq!(query.limit, MAX_LIST_LIMIT);
        let query = params(&[("limit", "9223372036854775807")])
            .to_query()
            .unwrap();
        assert_eq!(query.limit, MAX_LIST_LIMIT);
    }

    #[test]
    fn filters_sort_and_page() {
        let query = params(&[
            ("site", "plant-1"),
            ("sensor", ""),
            ("assignee", "sam"),
            ("sort", "severity"),
            ("order", "asc"),
            ("limit", "20"),
            ("page", "3"),
        ])
        .to_query()
        .unwrap();
        assert_eq!(query.site.as_deref(), Some("plant-1"));
        assert_eq!(query.sensor, None, "empty filter means all");
        assert_eq!(query.assignee.as_deref(), Some("sam"));
        assert_eq!(query.sort, SortKey::Severity);
        assert!(!query.descending);
        assert_eq!(query.offset, 40);
    }

    #[test]
    fn invalid_values_are_named() {
        let cases = [
            ("status", "done"),
            ("sort", "name"),
            ("order", "up"),
            ("limit", "0"),
            ("limit", "ten"),
            ("page", "-1"),
            ("page", "9223372036854775808"),
        ];
        for (key, value) in cases {
            let error = params(&[(key, value)]).to_query().unwrap_err();
            assert_eq!(error.code, "invalid_query");
            assert!(error.detail.starts_with(key), "{}", error.detail);
            assert!(error.detail.contains(value), "{}", error.detail);
        }
    }
}
