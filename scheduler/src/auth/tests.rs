use chrono::{Duration, Utc};

use super::*;

fn user(name: &str, password: &str) -> UserConfig {
    UserConfig {
        name: name.to_owned(),
        password_hash: hash_password_for_tests(password).unwrap(),
    }
}

fn token(name: &str) -> ApiTokenConfig {
    ApiTokenConfig {
        name: name.to_owned(),
        token: format!("{name}-{}", "t".repeat(MIN_API_TOKEN_CHARS)),
    }
}

fn auth(users: &[UserConfig], tokens: &[ApiTokenConfig]) -> Auth {
    Auth::new(users, tokens, Sessions::new(Duration::hours(1)), false).unwrap()
}

#[test]
fn password_check_accepts_only_the_right_password() {
    let auth = auth(&[user("alex", "correct horse")], &[]);
    assert!(auth.check_password("alex", "correct horse"));
    assert!(!auth.check_password("alex", "correct horse "));
    assert!(!auth.check_password("sam", "correct horse"));
}

#[test]
fn default_hash_is_argon2id_and_verifies() {
    let hash = hash_password("s3cret").unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let users = [UserConfig {
        name: "alex".into(),
        password_hash: hash,
    }];
    assert!(auth(&users, &[]).check_password("alex", "s3cret"));
}

#[test]
fn tokens_are_matched_by_value() {
    let auth = auth(&[], &[token("mes"), token("erp")]);
    let erp = format!("erp-{}", "t".repeat(MIN_API_TOKEN_CHARS));
    assert_eq!(auth.token_name(&erp), Some("erp"));
    assert_eq!(auth.token_name("erp"), None);
    assert!(auth.actions_enabled());
    assert!(!auth.has_users());
}

#[test]
fn nothing_configured_disables_actions() {
    let auth = auth(&[], &[]);
    assert!(!auth.actions_enabled());
    let request = poem::Request::builder().finish();
    let error = auth.api_actor(&request).unwrap_err();
    assert_eq!(error.code, "actions_disabled");
}

#[test]
fn config_errors_are_named() {
    let sessions = || Sessions::new(Duration::hours(1));
    let bad_hash = UserConfig {
        name: "alex".into(),
        password_hash: "plain".into(),
    };
    let error = Auth::new(&[bad_hash], &[], sessions(), false).unwrap_err();
    assert_eq!(error, AuthConfigError::InvalidHash { index: 0 });

    let twice = [user("alex", "a"), user("alex", "b")];
    let error = Auth::new(&twice, &[], sessions(), false).unwrap_err();
    assert!(matches!(error, AuthConfigError::Duplicate { .. }));

    let short = ApiTokenConfig {
        name: "mes".into(),
        token: "short".into(),
    };
    let error = Auth::new(&[], &[short], sessions(), false).unwrap_err();
    assert_eq!(error, AuthConfigError::ShortToken { index: 0 });
}

#[test]
fn sessions_expire_and_check_csrf() {
    let sessions = Sessions::new(Duration::minutes(5));
    let now = Utc::now();
    let (id, session) = sessions.create(Some("alex".into()), now);
    assert_eq!(sessions.get(&id, now), Some(session.clone()));
    assert!(session.check_csrf(Some(&session.csrf)).is_ok());
    let refused = session.check_csrf(None).unwrap_err();
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(session.check_csrf(Some("0000")).is_err());
    assert_eq!(sessions.get(&id, now + Duration::minutes(6)), None);
    assert_eq!(sessions.get(&id, now), None, "expired session was removed");
}

#[test]
fn cookie_is_http_only_and_strict() {
    let cookie = session_cookie("abc", Duration::hours(1), true);
    assert_eq!(
        cookie,
        "floorwatch_session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600; Secure"
    );
    let request = poem::Request::builder()
        .header("cookie", "theme=dark; floorwatch_session=abc")
        .finish();
    assert_eq!(session::cookie_value(&request), Some("abc"));
}
