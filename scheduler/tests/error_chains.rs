//! Error messages as the CLI prints them: each error joined with its
//! `source()` chain by ": ", the way anyhow's `{:#}` does. Every cause must
//! appear once, so no error may repeat its source's message in its own.

use std::error::Error;

use floorwatch_protocol::Secret;
use floorwatch_scheduler::{SchedulerConfig, SchedulerError, SqliteStore};
use tokio_util::sync::CancellationToken;

/// Joins `error` and its sources with ": ".
fn chain(error: &(dyn Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut next = error.source();
    while let Some(source) = next {
        parts.push(source.to_string());
        next = source.source();
    }
    parts.join(": ")
}

/// Asserts that `cause` occurs exactly once in the printed chain of `error`.
fn assert_cause_once(error: &(dyn Error + 'static), cause: &str) {
    let printed = chain(error);
    assert_eq!(printed.matches(cause).count(), 1, "{printed}");
}

async fn start_error(config: SchedulerConfig) -> SchedulerError {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    floorwatch_scheduler::start(config, listener, CancellationToken::new())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn invalid_secret_reason_once() {
    let config = SchedulerConfig {
        secrets: vec!["whsec_not base64!".into()],
        ..SchedulerConfig::default()
    };
    let error = config.validate().unwrap_err();
    assert_cause_once(&error, "not valid base64");
    assert!(
        error.to_string().contains("not valid base64"),
        "the message alone keeps the reason: {error}"
    );

    let error = start_error(config).await;
    assert!(matches!(error, SchedulerError::Config(_)), "{error}");
    assert_cause_once(&error, "not valid base64");
    assert!(chain(&error).starts_with("invalid scheduler configuration: scheduler.secrets[0]"));
}

#[tokio::test]
async fn invalid_technician_named_once() {
    let config = SchedulerConfig {
        secrets: vec![Secret::generate().expose()],
        technicians: vec!["alex".into(), "bad.name".into()],
        ..SchedulerConfig::default()
    };
    let error = start_error(config).await;
    assert_cause_once(&error, "scheduler.technicians[1]");
    assert_cause_once(&error, "\"bad.name\"");
}

#[tokio::test]
async fn corrupt_database_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheduler.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();

    let Err(error) = SqliteStore::open(&path) else {
        panic!("a file of 'x' bytes opened as a database");
    };
    assert_cause_once(&error, "file is not a database");
    assert!(
        error.to_string().contains("file is not a database"),
        "the server logs the message alone, so it keeps the cause: {error}"
    );

    let config = SchedulerConfig {
        database: path,
        secrets: vec![Secret::generate().expose()],
        ..SchedulerConfig::default()
    };
    let error = start_error(config).await;
    assert!(matches!(error, SchedulerError::Store(_)), "{error}");
    assert_cause_once(&error, "file is not a database");
    assert!(chain(&error).starts_with("failed to open the task store: failed to open database"));
}
