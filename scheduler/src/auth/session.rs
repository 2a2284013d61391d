//! Browser sessions: a random id in an HttpOnly, SameSite=Strict cookie,
//! and a synchronizer CSRF token stored with the session on the server.
//!
//! NOTE: sessions live in memory, so a restart signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use poem::http::StatusCode;
use poem::Request;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "floorwatch_session";
/// Form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";
/// Header that carries the CSRF token on JSON requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Maximum number of sessions kept; past it, expired and then anonymous
/// sessions are dropped to make room.
const MAX_SESSIONS: usize = 10_000;

/// One browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The signed-in user; `None` before login.
    pub user: Option<String>,
    /// The synchronizer token every form post must repeat.
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// Checks a presented CSRF token against the session's, in constant
    /// time. A missing or different token gives 403 `csrf_failed`.
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), ApiError> {
        let matches =
            presented.is_some_and(|token| bool::from(token.as_bytes().ct_eq(self.csrf.as_bytes())));
        if matches {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf_failed",
            "the CSRF token is missing or does not match the session: reload the page and retry",
        ))
    }
}

/// The session table.
#[derive(Debug)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
    ttl: Duration,
}

impl Sessions {
    /// Creates an empty table whose sessions last `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// Returns the session lifetime, for the cookie's `Max-Age`.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Creates a session for `user` (or an anonymous one) with a new id and
    /// CSRF token, and returns the id.
    pub fn create(&self, user: Option<String>, now: DateTime<Utc>) -> (String, Session) {
        let session = Session {
            user,
            csrf: random_token(),
            expires_at: now + self.ttl,
        };
        let id = random_token();
        let mut sessions = self.lock();
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, session| session.expires_at > now);
        }
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, session| session.user.is_some());
        }
        sessions.insert(id.clone(), session.clone());
        (id, session)
    }

    /// Returns the session `id` unless it is unknown or expired.
    pub fn get(&self, id: &str, now: DateTime<Utc>) -> Option<Session> {
        let mut sessions = self.lock();
        let session = sessions.get(id)?.clone();
        if session.expires_at <= now {
            sessions.remove(id);
            return None;
        }
        Some(session)
    }

    /// Ends the session `id`.
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // The map stays consistent after a panic elsewhere: every change is
        // a single insert or remove.
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Returns the `Set-Cookie` value for session `id`.
pub fn session_cookie(id: &str, max_age: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.num_seconds()
    )
}

/// Returns the value of the session cookie sent with `request`.
pub fn cookie_value(request: &Request) -> Option<&str> {
    request
        .headers()
        .get_all("cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// Returns 32 random bytes as 64 hex digits.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
