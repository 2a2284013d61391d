//! `floorwatch config check --kind edge` on the built binary: a valid
//! `edge.toml`, an invalid one and an environment override.

use std::process::{Command, Output};

fn check(file: &std::path::Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_floorwatch"))
        .args(["config", "check", "--kind", "edge"])
        .arg(file)
        .envs(env.iter().copied())
        .output()
        .expect("run floorwatch config check")
}

#[test]
fn edge_check_accepts_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(
        &path,
        "site = \"plant-2\"\n[[sensors]]\nkind = \"ds18b20\"\nid = \"freezer-1\"\n\
         interval_ms = 5000\npath = \"/sys/bus/w1/devices/28-00000a1b2c3d\"\n",
    )
    .unwrap();
    let output = check(&path, &[]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("valid"));
}

#[test]
fn edge_check_names_invalid_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(
        &path,
        "[[sensors]]\nkind = \"dht_iio\"\nid = \"air-1\"\nmodel = \"dht22\"\ninterval_ms = 500\n",
    )
    .unwrap();
    let output = check(&path, &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("sensors[0].interval_ms"), "{stderr}");
    assert!(stderr.contains("2000"), "{stderr}");
}

#[test]
fn edge_check_applies_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, "").unwrap();
    let output = check(&path, &[("FLOORWATCH_EDGE_SITE", "plant 1")]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("site = \"plant 1\""), "{stderr}");
}
