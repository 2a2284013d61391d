//! The agent-only `floorwatch-edge` binary validates its configuration like
//! `floorwatch edge`.

use std::process::Command;

fn check(config: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_floorwatch-edge"))
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn check_accepts_valid_config() {
    let output = check("broker = \"mqtt://127.0.0.1:1883\"\n");
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("configuration valid"));
}

#[test]
fn check_names_invalid_field() {
    let output = check("[[sensors]]\nkind = \"simulated\"\nid = \"oven.1\"\ninterval_ms = 1000\n");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("oven.1"), "{stderr}");
    assert!(stderr.contains("sensors[0]"), "{stderr}");
}
