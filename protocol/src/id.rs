//! Identifiers for sites, sensors, metrics, rules and technicians.
//!
//! Identifiers become MQTT topic levels and NATS subject tokens, so they are
//! restricted to `[A-Za-z0-9_-]{1,64}`: no dots, slashes, spaces or wildcards.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Maximum length of an identifier, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// A validated identifier matching `[A-Za-z0-9_-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Id(String);

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("identifier is empty: use 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'")]
    Empty,
    #[error(
        "identifier {value:?} is {len} bytes long: use at most {MAX_ID_LEN} characters \
         from A-Z, a-z, 0-9, '_' and '-'"
    )]
    TooLong { value: String, len: usize },
    #[error(
        "identifier {value:?} contains {found:?}: use only A-Z, a-z, 0-9, '_' and '-' \
         (no dots, slashes, spaces or MQTT wildcards)"
    )]
    InvalidChar { value: String, found: char },
}

impl Id {
    /// Parses `value` as an identifier.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        if value.is_empty() {
            return Err(IdError::Empty);
        }
        if value.len() > MAX_ID_LEN {
            return Err(IdError::TooLong {
                value: value.chars().take(80).collect(),
                len: value.len(),
            });
        }
        if let Some(found) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(IdError::InvalidChar {
                value: value.to_owned(),
                found,
            });
        }
        Ok(Self(value.to_owned()))
    }

    /// Returns the identifier as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Id {
    type Error = IdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Id> for String {
    fn from(id: Id) -> Self {
        id.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Id {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_letters_digits_dash_underscore() {
        assert_eq!(Id::parse("oven-1_A").unwrap().as_str(), "oven-1_A");
        assert!(Id::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn rejects_topic_and_subject_separators() {
        for bad in ["a.b", "a/b", "a b", "+", "#", "*", ">", "é"] {
            assert!(
                matches!(Id::parse(bad), Err(IdError::InvalidChar { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn rejects_empty_and_long() {
        assert_eq!(Id::parse(""), Err(IdError::Empty));
        assert!(matches!(
            Id::parse(&"a".repeat(65)),
            Err(IdError::TooLong { len: 65, .. })
        ));
    }

    #[test]
    fn error_names_value_and_fix() {
        let message = Id::parse("line.3").unwrap_err().to_string();
        assert!(message.contains("\"line.3\""), "{message}");
        assert!(message.contains("use only"), "{message}");
    }

    #[test]
    fn deserializes_with_validation() {
        assert!(serde_json::from_str::<Id>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<Id>("\"not/ok\"").is_err());
    }
}
