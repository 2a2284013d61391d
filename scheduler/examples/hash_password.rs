//! Prints the argon2 hash of a password read from standard input, for the
//! `password_hash` of a `[[scheduler.users]]` entry.
//!
//! ```sh
//! printf '%s' 'the password' | cargo run --release -p floorwatch-scheduler --example hash_password
//! ```

use std::error::Error;
use std::io::Read;

fn main() -> Result<(), Box<dyn Error>> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    println!("{}", hash_input(&input)?);
    Ok(())
}

/// Hashes the password in `input`, the text read from standard input. One
/// line ending at the end (`\n` or `\r\n`, as `echo` adds it) is not part of
/// the password.
fn hash_input(input: &str) -> Result<String, Box<dyn Error>> {
    let password = input
        .strip_suffix("\r\n")
        .or_else(|| input.strip_suffix('\n'))
        .unwrap_or(input);
    if password.is_empty() {
        return Err("the password on standard input is empty".into());
    }
    Ok(floorwatch_scheduler::hash_password(password)?)
}

#[cfg(test)]
mod tests {
    use floorwatch_scheduler::auth::{Auth, Sessions, UserConfig};

    use super::*;

    fn auth_for(hash: String) -> Auth {
        let user = UserConfig {
            name: "alex".into(),
            password_hash: hash,
        };
        Auth::new(
            &[user],
            &[],
            Sessions::new(chrono::Duration::hours(1)),
            false,
        )
        .expect("the printed hash is a valid password_hash")
    }

    #[test]
    fn hash_signs_in_without_line_ending() {
        let auth = auth_for(hash_input("s3cret pass\n").unwrap());
        assert!(auth.check_password("alex", "s3cret pass"));
        assert!(!auth.check_password("alex", "s3cret pass\n"));
        assert!(!auth.check_password("alex", "s3cret"));
    }

    #[test]
    fn only_one_line_ending_is_removed() {
        let auth = auth_for(hash_input("two\n\r\n").unwrap());
        assert!(auth.check_password("alex", "two\n"));
    }

    #[test]
    fn empty_password_is_rejected() {
        for input in ["", "\n", "\r\n"] {
            let error = hash_input(input).unwrap_err();
            assert!(error.to_string().contains("empty"), "{input:?}: {error}");
        }
    }
}
