//! Signatures of real deliveries during a key rotation: checked by the
//! protocol crate's verifier and by the reference Python library
//! (`standardwebhooks` on PyPI) through `reference_verifier.py`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{config, send_readings, start, stop, wait_for, Delivery, Receiver};
use floorwatch_protocol::{Secret, Verifier};
use serde_json::json;

const EPISODE_OPEN: [f64; 4] = [25.0, 31.0, 31.5, 32.0];
const EPISODE_CLEAR: [f64; 3] = [28.0, 27.0, 26.0];

/// Starts a bridge that signs with the receiver's secret and a second,
/// new one, and returns four deliveries with the new secret.
async fn rotated_deliveries() -> (Vec<Delivery>, Secret, Secret) {
    let receiver = Receiver::start(200).await;
    let new_secret = Secret::generate();
    let mut endpoint = receiver.endpoint();
    endpoint.secrets = vec![new_secret.expose()];
    let dir = tempfile::tempdir().unwrap();
    let (handle, shutdown) = start(config(&dir, vec![endpoint], &[10])).await;

    for sensor in ["oven-1", "oven-2"] {
        send_readings(&handle, sensor, 0, &EPISODE_OPEN).await;
        send_readings(&handle, sensor, 4, &EPISODE_CLEAR).await;
    }
    wait_for("four deliveries", || {
        handle.stats().deliveries_succeeded == 4
    })
    .await;
    stop(handle, shutdown).await;
    (receiver.deliveries(), receiver.secret.clone(), new_secret)
}

fn verify_with(
    secret: &Secret,
    delivery: &Delivery,
) -> Result<(), floorwatch_protocol::VerifyError> {
    Verifier::new(vec![secret.clone()], Duration::from_secs(300)).verify(
        delivery.webhook_id.as_deref(),
        delivery.timestamp.as_deref(),
        delivery.signature.as_deref(),
        &delivery.body,
        chrono::Utc::now().timestamp(),
    )
}

#[tokio::test]
async fn rotation_accepted_by_either_secret() {
    let (deliveries, old_secret, new_secret) = rotated_deliveries().await;
    assert_eq!(deliveries.len(), 4);
    for delivery in &deliveries {
        let signature = delivery.signature.as_deref().unwrap();
        assert_eq!(signature.split(' ').count(), 2, "{signature}");
        assert_eq!(verify_with(&old_secret, delivery), Ok(()));
        assert_eq!(verify_with(&new_secret, delivery), Ok(()));
        assert!(verify_with(&Secret::generate(), delivery).is_err());
    }
}

#[tokio::test]
async fn reference_library_verifies_deliveries() {
    let (deliveries, old_secret, new_secret) = rotated_deliveries().await;
    let recorded: Vec<_> = deliveries
        .iter()
        .map(|delivery| {
            json!({
                "headers": {
                    "webhook-id": delivery.webhook_id,
                    "webhook-timestamp": delivery.timestamp,
                    "webhook-signature": delivery.signature,
                },
                "body": String::from_utf8(delivery.body.clone()).unwrap(),
            })
        })
        .collect();
    let document = json!({
        "secrets": [old_secret.expose(), new_secret.expose()],
        "deliveries": recorded,
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deliveries.json");
    std::fs::write(&file, document.to_string()).unwrap();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference_verifier.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(&file)
        .output()
        .expect("python3 runs; install Python 3 to run this test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "reference verifier failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("verified 8 of 8"), "{stdout}");
}

#[tokio::test]
async fn v1a_signing_key_verifies() {
    let receiver = Receiver::start(200).await;
    let signing_key = floorwatch_protocol::SigningKey::generate();
    let mut endpoint = receiver.endpoint();
    endpoint.signing_keys = vec![signing_key.expose()];
    let dir = tempfile::tempdir().unwrap();
    let (handle, shutdown) = start(config(&dir, vec![endpoint], &[10])).await;

    send_readings(&handle, "oven-1", 0, &EPISODE_OPEN).await;
    wait_for("one delivery", || handle.stats().deliveries_succeeded == 1).await;
    stop(handle, shutdown).await;

    let deliveries = receiver.deliveries();
    let delivery = &deliveries[0];
    let signature = delivery.signature.as_deref().unwrap();
    assert!(signature.starts_with("v1,"), "{signature}");
    assert!(signature.contains(" v1a,"), "{signature}");
    let verifier = Verifier::with_public_keys(
        Vec::new(),
        vec![signing_key.public_key()],
        Duration::from_secs(300),
    );
    let result = verifier.verify(
        delivery.webhook_id.as_deref(),
        delivery.timestamp.as_deref(),
        Some(signature),
        &delivery.body,
        chrono::Utc::now().timestamp(),
    );
    assert_eq!(result, Ok(()));
}
