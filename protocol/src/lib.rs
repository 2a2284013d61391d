//! Types every floorwatch component shares: identifiers and the MQTT topic
//! layout, the reading format and its lenient parser, the webhook event
//! envelope, and Standard Webhooks signing and verification.
//!
//! Everything here is pure: no sockets, no files, no clocks except where a
//! caller passes the time in.

pub mod broker_url;
pub mod event;
pub mod id;
pub mod reading;
pub mod topic;
pub mod webhook;

pub use broker_url::BrokerUrl;
pub use event::{Condition, Event, EventType, IncidentData, Severity, WindowPoint};
pub use id::{Id, IdError};
pub use reading::{parse_payload, Quality, Reading, Rejection, MAX_PAYLOAD_BYTES};
pub use topic::Topics;
pub use webhook::{
    PublicKey, PublicKeyError, Secret, SecretError, SigningKey, SigningKeyError, Verifier,
    VerifyError,
};
