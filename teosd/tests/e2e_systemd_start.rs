//! systemd's start timeout: while teosd waits for bitcoind (here warming up, -28) or catches up, each
//! STATUS it sends before READY=1 also extends the start timeout (EXTEND_TIMEOUT_USEC), read on a
//! notify socket as systemd would.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

/// systemd's side of the notify socket: every datagram until `STOPPING=1` (or two minutes).
struct NotifySocket {
    received: Arc<Mutex<Vec<String>>>,
    reader: JoinHandle<()>,
}

impl NotifySocket {
    fn bind(path: &Path) -> NotifySocket {
        let socket = UnixDatagram::bind(path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let received = received.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let deadline = Instant::now() + Duration::from_secs(120);
                while Instant::now() < deadline {
                    if let Ok(n) = socket.recv(&mut buf) {
                        let message = String::from_utf8_lossy(&buf[..n]).to_string();
                        let stop = message.contains("STOPPING=1");
                        received.lock().unwrap().push(message);
                        if stop {
                            return;
                        }
                    }
                }
            })
        };
        NotifySocket { received, reader }
    }

    /// The messages received before `READY=1`, once teosd stopped (panics without `READY=1`).
    fn before_ready(self) -> Vec<String> {
        self.reader.join().unwrap();
        let messages = self.received.lock().unwrap().clone();
        let ready = messages
            .iter()
            .position(|m| m.contains("READY=1"))
            .unwrap_or_else(|| panic!("no READY=1 in {messages:?}"));
        messages[..ready].to_vec()
    }
}

/// Whether one message both extends the start timeout by 90 s and says `status_start...`.
fn extends_with_status(messages: &[String], status_start: &str) -> bool {
    messages.iter().any(|m| {
        m.lines().any(|l| l == "EXTEND_TIMEOUT_USEC=90000000")
            && m.lines()
                .any(|l| l.starts_with(&format!("STATUS={status_start}")))
    })
}

fn start_with_socket(datadir: &Path, api_port: u16, socket: &Path) -> TowerProcess {
    TowerProcess::spawn_with(
        datadir,
        api_port,
        &[],
        &[("NOTIFY_SOCKET", socket.to_str().unwrap())],
        "Tower ready",
    )
}

#[test]
fn start_timeout_is_extended_with_status_while_waiting_for_bitcoind_and_catching_up() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("teos");
    let api_port = TowerProcess::configure(&chain, &datadir, &TowerOptions::default());

    // bitcoind answers -28 (warming up) at first: teosd waits, extending the start as it goes.
    chain.sim().faults().warmup(Duration::from_secs(2));
    let socket = NotifySocket::bind(&dir.path().join("notify1.sock"));
    let mut tower = start_with_socket(&datadir, api_port, &dir.path().join("notify1.sock"));
    assert!(tower.stop().success());
    let messages = socket.before_ready();
    assert!(
        extends_with_status(&messages, "waiting for bitcoind"),
        "{messages:?}"
    );

    // Blocks mined while teosd was down: the catch-up at start extends it too.
    chain.mine(5);
    let socket = NotifySocket::bind(&dir.path().join("notify2.sock"));
    let mut tower = start_with_socket(&datadir, api_port, &dir.path().join("notify2.sock"));
    assert!(tower.stop().success());
    let messages = socket.before_ready();
    assert!(
        extends_with_status(&messages, "catching up: block "),
        "{messages:?}"
    );
}
