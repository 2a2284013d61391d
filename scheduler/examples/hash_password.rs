//! Prints the argon2 hash of a password read from standard input, for the
//! `password_hash` of a `[[scheduler.users]]` entry.
//!
//! ```sh
//! printf '%s' 'the password' | cargo run --release -p floorwatch-scheduler --example hash_password
//! ```

use std::io::Read;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password)?;
    let password = password.strip_suffix('\n').unwrap_or(&password);
    if password.is_empty() {
        return Err("the password on standard input is empty".into());
    }
    println!("{}", floorwatch_scheduler::hash_password(password)?);
    Ok(())
}
