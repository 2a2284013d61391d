//! External MQTT brokers for the agent tests: `mosquitto` and `nats-server`
//! spawned on free loopback ports, each stopped and restarted on the same
//! port and killed when dropped.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, WAIT};

/// Finds `name` on `PATH`, then in `/usr/sbin` (where Debian installs both
/// brokers).
pub fn find_binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} not found on PATH or in /usr/sbin: install it"))
}

/// Which external broker to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Mosquitto,
    Nats,
}

/// A broker process with its config and data in a temporary directory.
pub struct ExternalBroker {
    kind: BrokerKind,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    config: PathBuf,
    child: Option<Child>,
}

impl ExternalBroker {
    /// Starts `kind` on a free port with anonymous access and persistence,
    /// so that sessions survive [`ExternalBroker::stop`].
    pub fn start(kind: BrokerKind) -> Self {
        Self::start_with(kind, None)
    }

    /// Starts mosquitto accepting only `user` with `password`.
    pub fn start_mosquitto_with_password(user: &str, password: &str) -> Self {
        Self::start_with(BrokerKind::Mosquitto, Some((user, password)))
    }

    fn start_with(kind: BrokerKind, credentials: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().expect("create the broker directory");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = match kind {
            BrokerKind::Mosquitto => mosquitto_config(dir.path(), addr.port(), credentials),
            BrokerKind::Nats => nats_config(dir.path(), addr.port()),
        };
        let mut broker = Self {
            kind,
            addr,
            dir,
            config,
            child: None,
        };
        broker.resume();
        broker
    }

    /// Stops the broker with SIGTERM, so that it saves its sessions, and
    /// waits for it to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + WAIT;
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.wait();
    }

    /// Starts the broker again on the same port and waits until it accepts
    /// connections.
    pub fn resume(&mut self) {
        let mut command = match self.kind {
            BrokerKind::Mosquitto => {
                let mut command = Command::new(find_binary("mosquitto"));
                command.arg("-c").arg(&self.config);
                command
            }
            BrokerKind::Nats => {
                let mut command = Command::new(find_binary("nats-server"));
                command.arg("-js").arg("-c").arg(&self.config);
                command
            }
        };
        let log = std::fs::File::create(self.dir.path().join("broker.log"))
            .expect("create the broker log");
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn the broker");
        self.child = Some(child);
        self.wait_accepting();
    }

    fn wait_accepting(&mut self) {
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(self.addr).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("{:?} exited with {status}: {}", self.kind, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{:?} did not accept connections on {} within {WAIT:?}",
                self.kind,
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Returns the broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }
}

impl Drop for ExternalBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn mosquitto_config(dir: &Path, port: u16, credentials: Option<(&str, &str)>) -> PathBuf {
    let mut text = format!(
        "listener {port} 127.0.0.1\npersistence true\npersistence_location {}/\nlog_dest stderr\n",
        dir.display()
    );
    match credentials {
        Some((user, password)) => {
            let file = dir.join("passwords");
            let status = Command::new(find_binary("mosquitto_passwd"))
                .arg("-b")
                .arg("-c")
                .arg(&file)
                .args([user, password])
                .status()
                .expect("run mosquitto_passwd");
            assert!(status.success(), "mosquitto_passwd failed: {status}");
            text.push_str(&format!(
                "allow_anonymous false\npassword_file {}\n",
                file.display()
            ));
        }
        None => text.push_str("allow_anonymous true\n"),
    }
    let path = dir.join("mosquitto.conf");
    std::fs::write(&path, text).expect("write mosquitto.conf");
    path
}

/// nats-server 2.9 serves MQTT only with a `server_name` and JetStream,
/// which keeps sessions and retained messages in `store_dir`.
fn nats_config(dir: &Path, port: u16) -> PathBuf {
    let text = format!(
        "server_name: floorwatch_test\nlisten: 127.0.0.1:{client}\n\
         jetstream {{ store_dir: \"{store}\" }}\n\
         mqtt {{ listen: 127.0.0.1:{port} }}\n",
        client = free_port(),
        store = dir.join("jetstream").display(),
    );
    let path = dir.join("nats.conf");
    std::fs::write(&path, text).expect("write nats.conf");
    path
}
