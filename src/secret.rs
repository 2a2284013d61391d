//! The webhook secret shared by the bridge and the scheduler in `up`.

use std::path::Path;

use anyhow::Context;
use floorwatch_protocol::Secret;

/// Environment variable that sets the secret.
pub const SECRET_ENV: &str = "FLOORWATCH_WEBHOOK_SECRET";
/// File in the data directory that keeps a generated secret.
const SECRET_FILE: &str = "webhook-secret";

/// Returns the secret from `FLOORWATCH_WEBHOOK_SECRET`, else the one kept in
/// `data_dir`, else a new one that is written there (mode 0600).
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Secret> {
    resolve(data_dir, std::env::var(SECRET_ENV).ok())
}

fn resolve(data_dir: &Path, from_env: Option<String>) -> anyhow::Result<Secret> {
    if let Some(text) = from_env {
        return Secret::parse(&text).with_context(|| format!("invalid {SECRET_ENV}"));
    }
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Secret::parse(&text).with_context(|| {
            format!(
                "invalid webhook secret in {}: delete the file to generate a new one",
                path.display()
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let secret = Secret::generate();
            write_private(&path, &secret.expose())?;
            tracing::info!(path = %path.display(), "generated webhook secret");
            Ok(secret)
        }
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(file, "{text}").with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = resolve(dir.path(), None).unwrap();
        let second = resolve(dir.path(), None).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn environment_wins_and_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let secret = Secret::generate();
        assert_eq!(resolve(dir.path(), Some(secret.expose())).unwrap(), secret);
        let error = resolve(dir.path(), Some("whsec_short".into())).unwrap_err();
        assert!(format!("{error:#}").contains(SECRET_ENV), "{error:#}");
    }
}
