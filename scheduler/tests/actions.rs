//! End-to-end tests of sign-in, CSRF protection and the task actions over
//! the HTML forms and the JSON API.

mod common;

use common::{body, incident_event, TestScheduler};
use floorwatch_protocol::Secret;
use floorwatch_scheduler::auth::{hash_password_for_tests, ApiTokenConfig, UserConfig};
use serde_json::{json, Value};

const TOKEN: &str = "mes-0123456789abcdef0123456789abcdef";

async fn start_with_users() -> (tempfile::TempDir, TestScheduler) {
    let dir = tempfile::tempdir().unwrap();
    let scheduler = TestScheduler::start(
        &dir.path().join("scheduler.db"),
        &Secret::generate(),
        |config| {
            config.users = vec![UserConfig {
                name: "alex".into(),
                password_hash: hash_password_for_tests("correct horse").unwrap(),
            }];
            config.api_tokens = vec![ApiTokenConfig {
                name: "mes".into(),
                token: TOKEN.into(),
            }];
        },
    )
    .await;
    let opened = body(&incident_event("incident.opened", "inc-1", 1));
    assert_eq!(scheduler.deliver("msg_1", &opened).await.status(), 200);
    (dir, scheduler)
}

async fn task(scheduler: &TestScheduler) -> Value {
    let response = scheduler
        .client
        .get(scheduler.url("/api/v1/tasks/1"))
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

#[tokio::test]
async fn wrong_password_is_rejected() {
    let (_dir, scheduler) = start_with_users().await;
    let (response, session) = scheduler.login("alex", "wrong").await;
    assert_eq!(response.status(), 401);
    assert!(
        session.is_none(),
        "a failed sign-in must not start a session"
    );
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("Wrong name or password"));

    let (response, session) = scheduler.login("nobody", "correct horse").await;
    assert_eq!(response.status(), 401);
    assert!(session.is_none());
    scheduler.stop().await;
}

#[tokio::test]
async fn repeated_wrong_passwords_are_throttled() {
    let (_dir, scheduler) = start_with_users().await;
    // Five failures are free; the sixth makes the name and the address
    // wait one second.
    for attempt in 1..=6 {
        let (response, _) = scheduler.login("alex", "wrong").await;
        assert_eq!(response.status(), 401, "attempt {attempt}");
    }
    let (response, session) = scheduler.login("alex", "correct horse").await;
    assert_eq!(response.status(), 429);
    assert!(
        session.is_none(),
        "a throttled sign-in must not start a session"
    );
    assert_eq!(response.headers()["retry-after"], "1");
    let page = response.text().await.unwrap();
    assert!(page.contains("Too many failed sign-ins"), "{page}");
    // Another name from the same address waits too.
    let (response, _) = scheduler.login("nobody", "guess").await;
    assert_eq!(response.status(), 429);

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (response, session) = scheduler.login("alex", "correct horse").await;
    assert_eq!(response.status(), 303);
    assert!(session.is_some());
    // Success forgot the failures, so a wrong password is a plain 401.
    let (response, _) = scheduler.login("alex", "wrong").await;
    assert_eq!(response.status(), 401);
    scheduler.stop().await;
}

#[tokio::test]
async fn parallel_wrong_passwords_are_throttled() {
    let (_dir, scheduler) = start_with_users().await;
    let attempts = (0..20).map(|_| scheduler.login("alex", "wrong"));
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|(response, _)| response.status().as_u16())
        .collect();
    // Five free failures and the attempt that starts the wait are checked;
    // the rest are refused before their password is.
    let checked = statuses.iter().filter(|status| **status == 401).count();
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!(checked, 6, "statuses: {statuses:?}");
    assert_eq!(refused, 14, "statuses: {statuses:?}");
    scheduler.stop().await;
}

#[tokio::test]
async fn form_post_without_csrf_is_refused() {
    let (_dir, scheduler) = start_with_users().await;
    let (response, session) = scheduler.login("alex", "correct horse").await;
    assert_eq!(response.status(), 303);
    let session = session.expect("signed in");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");

    let client = TestScheduler::raw_client();
    let post = |fields: Vec<(&'static str, String)>| {
        client
            .post(scheduler.url("/tasks/1/acknowledge"))
            .header("cookie", &session.cookie)
            .form(&fields)
            .send()
    };
    let missing = post(vec![]).await.unwrap();
    assert_eq!(missing.status(), 403);
    let wrong = post(vec![("csrf_token", "0".repeat(64))]).await.unwrap();
    assert_eq!(wrong.status(), 403);
    assert_eq!(task(&scheduler).await["status"], "open", "nothing changed");

    let accepted = post(vec![("csrf_token", session.csrf.clone())])
        .await
        .unwrap();
    assert_eq!(accepted.status(), 303);
    assert_eq!(accepted.headers()["location"], "/tasks/1");
    scheduler.stop().await;
}

#[tokio::test]
async fn actions_record_who_did_them() {
    let (_dir, scheduler) = start_with_users().await;
    let (_, session) = scheduler.login("alex", "correct horse").await;
    let session = session.expect("signed in");
    let client = TestScheduler::raw_client();
    let form = |action: &str, extra: Vec<(&'static str, &'static str)>| {
        let mut fields = vec![("csrf_token", session.csrf.clone())];
        fields.extend(extra.into_iter().map(|(k, v)| (k, v.to_owned())));
        client
            .post(scheduler.url(&format!("/tasks/1/{action}")))
            .header("cookie", &session.cookie)
            .form(&fields)
            .send()
    };
    assert_eq!(form("acknowledge", vec![]).await.unwrap().status(), 303);
    assert_eq!(
        form("reassign", vec![("assignee", "sam")])
            .await
            .unwrap()
            .status(),
        303
    );

    let api = |action: &str| {
        scheduler
            .client
            .post(scheduler.url(&format!("/api/v1/tasks/1/{action}")))
            .bearer_auth(TOKEN)
            .send()
    };
    let started = api("start").await.unwrap();
    assert_eq!(started.status(), 200);
    let started: Value = started.json().await.unwrap();
    assert_eq!(started["status"], "in_progress");

    let detail = task(&scheduler).await;
    assert_eq!(detail["assignee"], "sam");
    let history: Vec<(String, String)> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let actor = entry["actor"].as_str().unwrap().to_owned();
            (actor, entry["change"].as_str().unwrap().to_owned())
        })
        .collect();
    let tail = &history[history.len() - 3..];
    assert_eq!(
        tail[0],
        ("alex".into(), "status open → acknowledged".into())
    );
    assert_eq!(
        tail[1],
        ("alex".into(), "reassigned from alex to sam".into())
    );
    assert_eq!(
        tail[2],
        ("mes".into(), "status acknowledged → in_progress".into())
    );

    let page = scheduler
        .client
        .get(scheduler.url("/tasks/1"))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("<td>mes</td><td>status acknowledged → in_progress</td>"));
    scheduler.stop().await;
}

#[tokio::test]
async fn api_rejects_bad_credentials_and_steps() {
    let (_dir, scheduler) = start_with_users().await;
    let post = |action: &str| {
        scheduler
            .client
            .post(scheduler.url(&format!("/api/v1/tasks/1/{action}")))
    };
    let anonymous = post("complete").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = post("complete").bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);

    let (_, session) = scheduler.login("alex", "correct horse").await;
    let session = session.unwrap();
    let no_header = post("complete")
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(no_header.status(), 403, "a session needs x-csrf-token");
    let with_header = post("complete")
        .header("cookie", &session.cookie)
        .header("x-csrf-token", &session.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(with_header.status(), 200);

    let again = post("acknowledge").bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(again.status(), 409);
    let error: Value = again.json().await.unwrap();
    assert_eq!(error["code"], "action_not_allowed");

    let unknown = post("reassign")
        .bearer_auth(TOKEN)
        .json(&json!({"assignee": "kim"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        unknown.status(),
        409,
        "a completed task cannot be reassigned"
    );
    let missing = scheduler
        .client
        .post(scheduler.url("/api/v1/tasks/99/start"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    scheduler.stop().await;
}

#[tokio::test]
async fn actions_are_disabled_without_users() {
    let dir = tempfile::tempdir().unwrap();
    let scheduler = TestScheduler::start(
        &dir.path().join("scheduler.db"),
        &Secret::generate(),
        |_| {},
    )
    .await;
    let opened = body(&incident_event("incident.opened", "inc-1", 1));
    scheduler.deliver("msg_1", &opened).await;
    let response = scheduler
        .client
        .post(scheduler.url("/api/v1/tasks/1/acknowledge"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], "actions_disabled");
    let page = scheduler.page().await;
    assert!(page.contains("Task actions are disabled"));
    scheduler.stop().await;
}

#[tokio::test]
async fn unacknowledged_task_escalates() {
    let dir = tempfile::tempdir().unwrap();
    let scheduler = TestScheduler::start(
        &dir.path().join("scheduler.db"),
        &Secret::generate(),
        |config| config.escalate_after_secs = 1,
    )
    .await;
    let opened = body(&incident_event("incident.opened", "inc-1", 1));
    assert_eq!(scheduler.deliver("msg_1", &opened).await.status(), 200);

    // The tick runs every second; the task is overdue after one.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let detail = loop {
        let detail = task(&scheduler).await;
        if detail["assignee"] == "sam" {
            break detail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task not escalated within 5 s: {detail}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let last = detail["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["actor"], "scheduler");
    let change = last["change"].as_str().unwrap();
    assert!(change.starts_with("escalated from alex to sam"), "{change}");

    let metrics = scheduler
        .client
        .get(scheduler.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Each further second without acknowledgement escalates again, so the
    // counter is at least 1 by now.
    let escalations: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("floorwatch_scheduler_escalations_total "))
        .expect("escalation counter exported")
        .parse()
        .unwrap();
    assert!(escalations >= 1, "{metrics}");
    scheduler.stop().await;
}
