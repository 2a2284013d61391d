//! Authentication for task actions: users with argon2 password hashes and
//! API tokens from the configuration, browser sessions with a CSRF token
//! each, and the checks that the action handlers run.

mod session;
mod throttle;

use std::collections::HashMap;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use floorwatch_protocol::Id;
use poem::http::StatusCode;
use poem::Request;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

pub use session::{session_cookie, Session, Sessions, CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE};
pub use throttle::{throttle_keys, SignInThrottle};

use crate::error::ApiError;

/// Shortest accepted API token, in characters.
pub const MIN_API_TOKEN_CHARS: usize = 32;

/// One `[[scheduler.users]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// PHC string of an argon2 hash, as [`hash_password`] makes it.
    pub password_hash: String,
}

/// One `[[scheduler.api_tokens]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenConfig {
    /// Recorded as the actor of the token's actions.
    pub name: String,
    /// Sent as `Authorization: Bearer TOKEN`; at least
    /// [`MIN_API_TOKEN_CHARS`] characters.
    pub token: String,
}

/// An invalid user or token entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    #[error(
        "scheduler.{field}[{index}].name {value:?} is invalid: use letters, digits, `-` or `_`"
    )]
    InvalidName {
        field: &'static str,
        index: usize,
        value: String,
    },
    #[error("scheduler.{field} lists {name:?} twice: remove the duplicate")]
    Duplicate { field: &'static str, name: String },
    #[error(
        "scheduler.users[{index}].password_hash is not an argon2 PHC string: \
         pipe the password into `cargo run --release -p floorwatch-scheduler \
         --example hash_password`"
    )]
    InvalidHash { index: usize },
    #[error(
        "scheduler.api_tokens[{index}].token is shorter than {MIN_API_TOKEN_CHARS} \
         characters: use a long random string"
    )]
    ShortToken { index: usize },
}

/// Failure to hash a password.
#[derive(Debug, thiserror::Error)]
#[error("failed to hash the password: {0}")]
pub struct HashError(argon2::password_hash::Error);

/// Hashes `password` with argon2id and a random salt, returning the PHC
/// string that `password_hash` takes.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    hash_with(&Argon2::default(), password)
}

fn hash_with(argon2: &Argon2<'_>, password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(HashError)?;
    let hash = argon2
        .hash_password(password.as_bytes(), &salt)
        .map_err(HashError)?;
    Ok(hash.to_string())
}

/// Hashes with the smallest argon2 cost, so that debug-build tests do not
/// spend seconds per login. Never use these hashes in production.
#[doc(hidden)]
pub fn hash_password_for_tests(password: &str) -> Result<String, HashError> {
    let params = argon2::Params::new(1024, 1, 1, None).map_err(|error| HashError(error.into()))?;
    let argon2 = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    hash_with(&argon2, password)
}

/// Users, API tokens and sessions.
#[derive(Debug)]
pub struct Auth {
    /// User name → PHC hash string, checked at load.
    users: HashMap<String, String>,
    tokens: Vec<ApiTokenConfig>,
    /// Browser sessions.
    pub sessions: Sessions,
    /// Failed sign-ins, by name and client address.
    pub throttle: SignInThrottle,
    /// Adds `Secure` to the session cookie.
    pub cookie_secure: bool,
}

impl Auth {
    /// Checks and stores the configured users and tokens.
    pub fn new(
        users: &[UserConfig],
        tokens: &[ApiTokenConfig],
        sessions: Sessions,
        cookie_secure: bool,
    ) -> Result<Self, AuthConfigError> {
        check_users(users)?;
        check_tokens(tokens)?;
        let users = users
            .iter()
            .map(|user| (user.name.clone(), user.password_hash.clone()))
            .collect();
        Ok(Self {
            users,
            tokens: tokens.to_vec(),
            sessions,
            throttle: SignInThrottle::default(),
            cookie_secure,
        })
    }

    /// Returns true when at least one user or token is configured; without
    /// any, task actions are disabled.
    pub fn actions_enabled(&self) -> bool {
        !self.users.is_empty() || !self.tokens.is_empty()
    }

    /// Returns true when users are configured, so the login form works.
    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    /// Checks `password` for `name`. Slow on purpose (argon2): call it from
    /// a blocking thread. An unknown name costs the same as a known one,
    /// so response times do not reveal which names exist.
    pub fn check_password(&self, name: &str, password: &str) -> bool {
        let (stored, known) = match self.users.get(name) {
            Some(stored) => (stored, true),
            // Some configured user's hash, checked and then ignored.
            None => match self.users.values().next() {
                Some(stored) => (stored, false),
                None => return false,
            },
        };
        let Ok(hash) = PasswordHash::new(stored) else {
            return false;
        };
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok();
        matches && known
    }

    /// Returns the name of the API token equal to `presented`.
    pub fn token_name(&self, presented: &str) -> Option<&str> {
        // Every token is compared in full, so timing does not reveal which
        // prefix matched.
        let mut found = None;
        for token in &self.tokens {
            if bool::from(token.token.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(token.name.as_str());
            }
        }
        found
    }

    /// Returns the actor of an API request: the name of a bearer token, or
    /// the user of a session cookie whose request carries the session's
    /// CSRF token in the `x-csrf-token` header.
    pub fn api_actor(&self, request: &Request) -> Result<String, ApiError> {
        self.check_enabled()?;
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
        };
        if let Some(authorization) = header("authorization") {
            let token = authorization.strip_prefix("Bearer ").unwrap_or_default();
            return self
                .token_name(token.trim())
                .map(str::to_owned)
                .ok_or_else(|| unauthorized("the API token is not valid"));
        }
        let session = self.signed_in(request)?;
        session.check_csrf(header(CSRF_HEADER))?;
        session.user.ok_or_else(|| unauthorized("sign in first"))
    }

    /// Returns the signed-in session of `request` and checks the CSRF token
    /// posted with a form.
    pub fn form_actor(&self, request: &Request, csrf: Option<&str>) -> Result<String, ApiError> {
        self.check_enabled()?;
        let session = self.signed_in(request)?;
        session.check_csrf(csrf)?;
        session.user.ok_or_else(|| unauthorized("sign in first"))
    }

    /// Returns the live session of `request`, anonymous or not.
    pub fn session(&self, request: &Request) -> Option<Session> {
        let id = session::cookie_value(request)?;
        self.sessions.get(id, chrono::Utc::now())
    }

    fn signed_in(&self, request: &Request) -> Result<Session, ApiError> {
        self.session(request)
            .ok_or_else(|| unauthorized("sign in first: no session"))
    }

    fn check_enabled(&self) -> Result<(), ApiError> {
        if self.actions_enabled() {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "actions_disabled",
            "task actions are disabled: configure [[scheduler.users]] or \
             [[scheduler.api_tokens]] to enable them",
        ))
    }
}

/// Returns the session id from the cookie of `request`.
pub fn session_id(request: &Request) -> Option<&str> {
    session::cookie_value(request)
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

fn check_users(users: &[UserConfig]) -> Result<(), AuthConfigError> {
    let mut seen = Vec::new();
    for (index, user) in users.iter().enumerate() {
        check_name("users", index, &user.name, &mut seen)?;
        let hash = PasswordHash::new(&user.password_hash)
            .map_err(|_| AuthConfigError::InvalidHash { index })?;
        if !hash.algorithm.as_str().starts_with("argon2") {
            return Err(AuthConfigError::InvalidHash { index });
        }
    }
    Ok(())
}

fn check_tokens(tokens: &[ApiTokenConfig]) -> Result<(), AuthConfigError> {
    let mut seen = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        check_name("api_tokens", index, &token.name, &mut seen)?;
        if token.token.chars().count() < MIN_API_TOKEN_CHARS {
            return Err(AuthConfigError::ShortToken { index });
        }
    }
    Ok(())
}

fn check_name<'a>(
    field: &'static str,
    index: usize,
    name: &'a str,
    seen: &mut Vec<&'a str>,
) -> Result<(), AuthConfigError> {
    if Id::parse(name).is_err() {
        return Err(AuthConfigError::InvalidName {
            field,
            index,
            value: name.to_owned(),
        });
    }
    if seen.contains(&name) {
        return Err(AuthConfigError::Duplicate {
            field,
            name: name.to_owned(),
        });
    }
    seen.push(name);
    Ok(())
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
