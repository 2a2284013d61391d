use chrono::TimeZone;
use floorwatch_protocol::{Condition, Severity};

use super::*;

fn task(sensor: &str, unit: &str) -> Task {
    let opened_at = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
    Task {
        id: 1,
        incident_id: "inc-1".into(),
        site: "plant-a".into(),
        sensor: sensor.into(),
        metric: "temperature".into(),
        rule: "too-hot".into(),
        value: 31.5,
        threshold: 30.0,
        unit: unit.into(),
        severity: Severity::Critical,
        condition: Condition::Above,
        clear_threshold: Some(29.0),
        status: TaskStatus::Open,
        condition_cleared: true,
        assignee: "alex".into(),
        assigned_at: opened_at,
        opened_at,
        resolved_at: None,
        updated_at: opened_at,
        last_event_seq: 1,
    }
}

fn render_with(params: &ListParams, tasks: &[Task], matching: u64) -> String {
    let counts = TaskCounts {
        total: matching,
        ..TaskCounts::default()
    };
    let query = params.to_query().unwrap();
    let context = index_context(
        params,
        &query,
        tasks,
        matching,
        &counts,
        &Viewer::default(),
        Utc::now(),
    );
    Page::new().unwrap().render("index.html", &context).unwrap()
}

fn render(tasks: &[Task]) -> String {
    render_with(&ListParams::default(), tasks, tasks.len() as u64)
}

#[test]
fn rows_show_time_reading_sensor() {
    let html = render(&[task("oven-1", "°C")]);
    assert!(html.contains("2024-05-01 12:00:00 UTC"), "time missing");
    assert!(html.contains("31.5 °C"), "temperature missing");
    assert!(html.contains("<td>oven-1</td>"), "sensor missing");
    assert!(html.contains("<td>alex</td>"), "assignee missing");
    assert!(html.contains(">cleared</span>"), "condition missing");
    assert!(html.contains("href=\"/tasks/1\""), "task link missing");
    assert!(!html.contains("No maintenance tasks yet"));
}

#[test]
fn empty_state_is_shown() {
    let html = render(&[]);
    assert!(html.contains("No maintenance tasks yet"));
    assert!(!html.contains("<tbody>"));
}

#[test]
fn disabled_actions_are_explained() {
    let html = render(&[]);
    assert!(html.contains("Task actions are disabled"));
    assert!(html.contains("[[scheduler.users]]"));
}

#[test]
fn untrusted_text_is_escaped() {
    let script = "<script>alert(1)</script>";
    let html = render(&[task(script, script)]);
    assert!(!html.contains(script), "raw script tag in page");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"));
}

#[test]
fn pagination_links_keep_filters() {
    let params = ListParams {
        site: Some("plant a&b".into()),
        limit: Some("1".into()),
        page: Some("2".into()),
        ..ListParams::default()
    };
    let html = render_with(&params, &[task("oven-1", "°C")], 3);
    assert!(html.contains("Page 2 of 3 (3 matching)"), "{html}");
    assert!(html.contains("href=\"&#x2F;?site=plant%20a%26b&amp;limit=1&amp;page=1\""));
    assert!(html.contains("href=\"&#x2F;?site=plant%20a%26b&amp;limit=1&amp;page=3\""));
}

#[test]
fn percent_encoding_keeps_unreserved() {
    assert_eq!(percent_encode("oven-1_a.b~"), "oven-1_a.b~");
    assert_eq!(percent_encode("a b/ü"), "a%20b%2F%C3%BC");
}

#[test]
fn readings_show_two_decimals() {
    let mut precise = task("oven-1", "°C");
    precise.value = 10.88060276111111;
    let html = render(&[precise]);
    assert!(html.contains(">10.88 °C</td>"), "rounded reading missing");
    assert!(!html.contains("10.8806"), "unrounded reading on page");
}

#[test]
fn absurd_value_long_unit_shortened() {
    let mut absurd = task("oven-1", &"u".repeat(200_000));
    absurd.value = 1e300;
    let html = render(&[absurd]);
    assert!(html.contains(">1.00e300 uuuuuuuuuuuuuuu…</td>"), "reading");
    assert!(html.len() < 20_000, "page is {} bytes", html.len());
}

#[test]
fn long_values_wrap_in_cells() {
    let html = render(&[task("oven-1", "°C")]);
    assert!(html.contains("overflow-wrap: anywhere"));
}

#[test]
fn task_count_is_pluralized() {
    let one = render(&[task("oven-1", "°C")]);
    assert!(one.contains("<strong>1</strong> task:"), "singular");
    let two = render(&[task("oven-1", "°C"), task("oven-2", "°C")]);
    assert!(two.contains("<strong>2</strong> tasks:"), "plural");
}
