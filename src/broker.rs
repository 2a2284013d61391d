//! The embedded rumqttd broker: configuration from `broker.toml` and a
//! start that reports a port in use as a clear error and waits until the
//! listener accepts connections.
//!
//! NOTE: rumqttd 0.20 has no shutdown: its threads live until the process
//! exits, and `Broker::start` blocks the thread it runs on.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The default broker configuration, `broker.toml` at the workspace root.
pub const DEFAULT_BROKER_TOML: &str = include_str!("../broker.toml");

/// How long to wait for the broker's listener to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the broker configuration: the embedded default, then `file`, then
/// `overrides` (a `[broker]` table from an `up` config), merged key by key.
pub fn load_config(
    file: Option<&Path>,
    overrides: Option<&toml::Table>,
) -> anyhow::Result<toml::Table> {
    let mut table: toml::Table =
        toml::from_str(DEFAULT_BROKER_TOML).context("embedded broker.toml is invalid")?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read broker config {}", path.display()))?;
        let file_table: toml::Table = toml::from_str(&text)
            .with_context(|| format!("invalid broker config {}", path.display()))?;
        merge(&mut table, file_table);
    }
    if let Some(overrides) = overrides {
        merge(&mut table, overrides.clone());
    }
    Ok(table)
}

/// Merges `overlay` into `base`: tables recursively, other values replaced.
pub fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(overlay_table)) => {
                merge(base_table, overlay_table)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Parses a merged table into rumqttd's configuration, rejecting keys that
/// rumqttd would silently ignore (it does not deny unknown fields).
pub fn parse_config(table: toml::Table) -> anyhow::Result<rumqttd::Config> {
    let config: rumqttd::Config = table
        .clone()
        .try_into()
        .context("invalid broker configuration (see broker.toml for the keys)")?;
    let known =
        toml::Value::try_from(&config).context("cannot serialize the broker configuration")?;
    let mut unknown = Vec::new();
    collect_unknown_keys(&table, &known, "", &mut unknown);
    if let Some(key) = unknown.first() {
        bail!(
            "unknown broker setting `{key}`: check its spelling against broker.toml \
             (rumqttd 0.20 keys)"
        );
    }
    Ok(config)
}

/// Lists the key paths of `given` that `known` (the parsed configuration,
/// serialized back) does not contain.
fn collect_unknown_keys(
    given: &toml::Table,
    known: &toml::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    for (key, value) in given {
        let full = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match known.get(key) {
            None => out.push(full),
            Some(known_value) => {
                if let (toml::Value::Table(inner), true) = (value, known_value.is_table()) {
                    collect_unknown_keys(inner, known_value, &full, out);
                }
            }
        }
    }
}

/// Sets the listen address of the first MQTT 3.1.1 server, `[v4.1]`.
pub fn set_listen(table: &mut toml::Table, addr: SocketAddr) -> anyhow::Result<()> {
    let server = table
        .get_mut("v4")
        .and_then(|v4| v4.get_mut("1"))
        .and_then(|server| server.as_table_mut())
        .context("broker config has no [v4.1] server to set the listen address of")?;
    server.insert("listen".into(), toml::Value::String(addr.to_string()));
    Ok(())
}

/// Returns the listen addresses of every MQTT server in the configuration.
pub fn listen_addrs(config: &rumqttd::Config) -> Vec<SocketAddr> {
    let servers = config.v4.iter().chain(config.v5.iter());
    servers
        .flat_map(|servers| servers.values().map(|server| server.listen))
        .collect()
}

/// A running embedded broker.
pub struct EmbeddedBroker {
    addr: SocketAddr,
}

impl EmbeddedBroker {
    /// Starts rumqttd with `table` on its own thread and waits until its
    /// first listener accepts TCP connections.
    ///
    /// `flag` names the command-line flag that sets the address, for the
    /// error when the port is in use.
    pub fn start(table: toml::Table, flag: &str) -> anyhow::Result<Self> {
        let config = parse_config(table)?;
        let addrs = listen_addrs(&config);
        let Some(&addr) = addrs.first() else {
            bail!("broker configuration has no [v4.N] or [v5.N] server to listen on");
        };
        for addr in &addrs {
            if addr.port() == 0 {
                bail!(
                    "cannot listen for MQTT on {addr}: the embedded broker needs a fixed port \
                     because rumqttd does not report the port it bound; pass {flag} 127.0.0.1:PORT"
                );
            }
            // rumqttd logs a failed bind on its own thread and carries on, so
            // check first that every address is free.
            TcpListener::bind(addr).map_err(|error| {
                anyhow::anyhow!(
                    "cannot listen for MQTT on {addr}: {error}; \
                     pass {flag} 127.0.0.1:PORT with a free port, or stop the program using it"
                )
            })?;
        }

        std::thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || {
                let mut broker = rumqttd::Broker::new(config);
                if let Err(error) = broker.start() {
                    tracing::error!(%error, "embedded MQTT broker stopped");
                }
            })
            .context("cannot start the broker thread")?;

        wait_until_listening(addr)?;
        Ok(Self { addr })
    }

    /// Returns the address of the first MQTT listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn wait_until_listening(addr: SocketAddr) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if mqtt_handshake(addr).is_ok() {
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!("embedded MQTT broker did not accept connections on {addr} within {READY_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Connects as an MQTT 3.1.1 client, expects an accepting CONNACK, and
/// disconnects. A bare TCP probe would make rumqttd log an error for the
/// connection that closed before its CONNECT.
fn mqtt_handshake(addr: SocketAddr) -> std::io::Result<()> {
    const CLIENT_ID: &[u8] = b"floorwatch-ready-probe";
    let mut connect = vec![0x10, 12 + CLIENT_ID.len() as u8];
    // Protocol name "MQTT", level 4 (3.1.1), clean session, keep-alive 10 s.
    connect.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10]);
    connect.extend_from_slice(&[0, CLIENT_ID.len() as u8]);
    connect.extend_from_slice(CLIENT_ID);

    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(&connect)?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack)?;
    if connack[0] != 0x20 || connack[3] != 0 {
        return Err(std::io::Error::other(format!(
            "unexpected CONNACK {connack:02x?}"
        )));
    }
    stream.write_all(&[0xE0, 0x00])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_loopback_with_dynamic_filters() {
        let table = load_config(None, None).unwrap();
        let config: rumqttd::Config = table.try_into().unwrap();
        let server = &config.v4.as_ref().unwrap()["1"];
        assert!(server.listen.ip().is_loopback());
        assert!(server.connections.dynamic_filters);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        for text in [
            "bogus = 1",
            "[router]\nmax_conections = 5",
            "[v4.1.connections]\ndynamic_filter = true",
        ] {
            let overrides: toml::Table = toml::from_str(text).unwrap();
            let table = load_config(None, Some(&overrides)).unwrap();
            let error = parse_config(table).unwrap_err().to_string();
            assert!(error.contains("unknown broker setting"), "{text}: {error}");
        }
        let defaults = load_config(None, None).unwrap();
        let result = parse_config(defaults);
        assert!(result.is_ok(), "{result:?}");
    }

    #[test]
    fn overrides_merge_key_by_key() {
        let overrides: toml::Table =
            toml::from_str("[v4.1.connections]\nmax_inflight_count = 7").unwrap();
        let mut table = load_config(None, Some(&overrides)).unwrap();
        set_listen(&mut table, "127.0.0.1:1999".parse().unwrap()).unwrap();
        let config: rumqttd::Config = table.try_into().unwrap();
        let server = &config.v4.as_ref().unwrap()["1"];
        assert_eq!(server.connections.max_inflight_count, 7);
        assert!(server.connections.dynamic_filters);
        assert_eq!(server.listen.port(), 1999);
    }
}
