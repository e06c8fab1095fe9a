//! `tor_support` against a real `tor` daemon (Debian's package), started by each test with its own
//! data directory, `DisableNetwork 1` (ADD_ONION works offline), a free control port and cookie
//! authentication. Skipped, saying so, only when `tor` is not installed (`.ci/run` installs it).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use common::*;

/// A key in rust-teos's `onion_v3_sk` format (64 bytes: the expanded ed25519 key of the seed
/// 00 01 .. 1f) and the address Tor 0.4.9 derived for it from a `HiddenServiceDir` holding the same key.
const RUST_TEOS_KEY_HEX: &str = "3894eea49c580aef816935762be049559d6d1440dede12e6a125f1841fff8e6f\
                                 a9d71862a3e5746b571be3d187b0041046f52ebd850c7cbd5fde8ee38473b649";
const RUST_TEOS_KEY_ONION: &str = "aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4bqead.onion";

/// A `tor` process of the test's own; killed on drop.
struct Tor {
    child: Child,
    control_port: u16,
    cookie: PathBuf,
    torrc: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tor {
    /// Starts `tor`, or returns `None` (after saying why) when it is not installed.
    fn start() -> Option<Tor> {
        if Command::new("tor").arg("--version").output().is_err() {
            eprintln!("SKIPPED: `tor` is not installed (apt-get install tor); .ci/run installs it");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        set_mode(&data, 0o700);
        let control_port = free_port();
        let cookie = dir.path().join("control_auth_cookie");
        let torrc = dir.path().join("torrc");
        std::fs::write(
            &torrc,
            format!(
                "DataDirectory {}\nDisableNetwork 1\nSocksPort 0\nControlPort 127.0.0.1:{control_port}\n\
                 CookieAuthentication 1\nCookieAuthFile {}\nLog notice file {}\n",
                data.display(),
                cookie.display(),
                dir.path().join("tor.log").display(),
            ),
        )
        .unwrap();
        let tor = Tor {
            child: spawn_tor(&torrc),
            control_port,
            cookie,
            torrc,
            _dir: dir,
        };
        tor.wait_serving();
        Some(tor)
    }

    fn wait_serving(&self) {
        wait_until("tor's control port", SOON, || {
            self.cookie.exists() && TcpStream::connect(("127.0.0.1", self.control_port)).is_ok()
        });
    }

    /// Stops tor and starts it again with the same configuration (a new cookie).
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.cookie);
        self.child = spawn_tor(&self.torrc);
        self.wait_serving();
    }

    /// The `teos.toml` lines that point teosd at this Tor.
    fn config(&self) -> Vec<String> {
        vec![
            "tor_support = true".into(),
            format!("tor_control_port = {}", self.control_port),
            "onion_hidden_service_port = 9814".into(),
        ]
    }

    /// A control connection of the test's own, authenticated with the cookie.
    fn control(&self) -> Control {
        let stream = TcpStream::connect(("127.0.0.1", self.control_port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut control = Control {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        let cookie = hex::encode(std::fs::read(&self.cookie).unwrap());
        let reply = control.command(&format!("AUTHENTICATE {cookie}"));
        assert!(reply[0].starts_with("250"), "{reply:?}");
        control
    }
}

impl Drop for Tor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_tor(torrc: &Path) -> Child {
    Command::new("tor")
        .arg("-f")
        .arg(torrc)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting tor")
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A minimal control-port client for the checks (one command, its reply lines).
struct Control {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Control {
    fn command(&mut self, line: &str) -> Vec<String> {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        let mut lines = Vec::new();
        loop {
            let mut reply = String::new();
            assert!(self.reader.read_line(&mut reply).unwrap() > 0, "tor closed");
            let reply = reply.trim_end().to_owned();
            let last = reply.as_bytes().get(3) == Some(&b' ');
            lines.push(reply);
            if last {
                return lines;
            }
        }
    }

    /// Whether Tor already serves `key`'s onion: adding it again is refused as a collision.
    fn serves(&mut self, key: &[u8]) -> bool {
        let blob = base64::engine::general_purpose::STANDARD.encode(key);
        let reply = self.command(&format!(
            "ADD_ONION ED25519-V3:{blob} Flags=DiscardPK Port=1,127.0.0.1:1"
        ));
        if reply[0].starts_with("550") && reply[0].contains("collision") {
            return true;
        }
        assert!(reply.last().unwrap().starts_with("250"), "{reply:?}");
        let id = reply
            .iter()
            .find_map(|l| l.strip_prefix("250-ServiceID="))
            .unwrap()
            .to_owned();
        let removed = self.command(&format!("DEL_ONION {id}"));
        assert!(removed[0].starts_with("250"), "{removed:?}");
        false
    }
}

/// The `onion_service` event: (`<onion>:<port>`, the loopback target).
fn onion_event(tower: &TowerProcess) -> (String, std::net::SocketAddr) {
    let event = tower.wait_for_event("the onion_service event", SOON, |e| e.is("onion_service"));
    (
        event.text("onion").unwrap(),
        event.text("target").unwrap().parse().unwrap(),
    )
}

/// The `onion` field of the ready event.
fn ready_onion(tower: &TowerProcess) -> Option<String> {
    tower
        .lines()
        .iter()
        .find(|l| l.is("ready"))
        .and_then(|l| l.event.as_ref()?.text("onion"))
}

#[test]
fn onion_address_is_published_reported_and_kept_across_restarts() {
    let Some(tor) = Tor::start() else { return };
    let chain = Chain::start(0);
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("teos");
    let options = TowerOptions {
        extra: tor.config(),
    };
    let tower = TowerProcess::start(&chain, &datadir, &options);

    let (onion, target) = onion_event(&tower);
    let host = onion.strip_suffix(":9814").expect("the onion port");
    assert!(host.ends_with(".onion") && host.len() == 56 + 6, "{onion}");
    assert!(target.ip().is_loopback() && target.port() != tower.api_port);
    assert_eq!(ready_onion(&tower).as_deref(), Some(onion.as_str()));
    let info = tower.admin().tower_info().unwrap();
    assert_eq!(info.onion_address, onion);
    assert!(
        info.addresses
            .iter()
            .any(|a| a.address_type == 1 && a.address == host && a.port == 9814),
        "a TorV3 entry as rust-teos reports it: {:?}",
        info.addresses
    );

    // The key is rust-teos's file, private, and Tor holds its service while teosd runs.
    let key_file = datadir.join("regtest").join("onion_v3_sk");
    let key = std::fs::read(&key_file).unwrap();
    assert_eq!(key.len(), 64);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mut control = tor.control();
    assert!(control.serves(&key), "Tor serves teosd's onion service");

    // A restart publishes the same address from the kept key; a stop removes the service.
    let mut tower = tower.restart();
    assert_eq!(onion_event(&tower).0, onion);
    assert!(control.serves(&key), "published again after the restart");
    assert!(tower.stop().success());
    assert!(!control.serves(&key), "removed when teosd stopped");
    assert_eq!(std::fs::read(&key_file).unwrap(), key, "key file unchanged");
}

#[test]
fn a_rust_teos_onion_key_keeps_its_address() {
    let Some(tor) = Tor::start() else { return };
    let chain = Chain::start(0);
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("teos");
    let key = hex::decode(RUST_TEOS_KEY_HEX).unwrap();
    std::fs::create_dir_all(datadir.join("regtest")).unwrap();
    std::fs::write(datadir.join("regtest").join("onion_v3_sk"), &key).unwrap();
    let options = TowerOptions {
        extra: tor.config(),
    };
    let mut tower = TowerProcess::start(&chain, &datadir, &options);
    assert_eq!(onion_event(&tower).0, format!("{RUST_TEOS_KEY_ONION}:9814"));
    assert!(tor.control().serves(&key));
    assert!(tower.stop().success());
}

#[test]
fn the_onion_service_is_published_again_after_tor_restarts() {
    let Some(mut tor) = Tor::start() else { return };
    let chain = Chain::start(0);
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("teos");
    let options = TowerOptions {
        extra: tor.config(),
    };
    let mut tower = TowerProcess::start(&chain, &datadir, &options);
    let (onion, _) = onion_event(&tower);
    let key = std::fs::read(datadir.join("regtest").join("onion_v3_sk")).unwrap();

    // A restarted Tor has forgotten every service of its controllers: teosd notices (it checks every
    // 10 s) and publishes it again, with the new cookie.
    tor.restart();
    wait_until(
        "a second onion_service event",
        Duration::from_secs(60),
        || {
            tower
                .lines()
                .iter()
                .filter(|l| l.is("onion_service"))
                .count()
                >= 2
        },
    );
    let again = tower
        .lines()
        .iter()
        .rev()
        .filter(|l| l.is("onion_service"))
        .find_map(|l| l.event.as_ref()?.text("onion"));
    assert_eq!(again.as_deref(), Some(onion.as_str()));
    assert!(tor.control().serves(&key), "Tor serves it again");
    assert!(tower.stop().success());
}

#[test]
fn without_tor_teosd_refuses_to_start_with_tor_support() {
    // No tor process: nothing listens on the control port.
    let chain = Chain::start(0);
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("teos");
    let options = TowerOptions {
        extra: vec![
            "tor_support = true".into(),
            format!("tor_control_port = {}", free_port()),
        ],
    };
    let api_port = TowerProcess::configure(&chain, &datadir, &options);
    let mut tower = TowerProcess::spawn_with(&datadir, api_port, &[], &[], "");
    let status = tower.wait_exit(SOON);
    assert!(!status.success(), "{status}");
    assert!(
        tower.has_log("tor_control_port"),
        "the error names the key: {:?}",
        tower.logs()
    );
}

/// One `POST /register` on `stream` (HTTP/1.1, kept alive); returns the status code.
fn register(stream: &mut TcpStream, n: u8) -> u16 {
    let user = secp256k1::SecretKey::from_slice(&[n; 32])
        .unwrap()
        .public_key(secp256k1::SECP256K1);
    let body = format!("{{\"user_id\":\"{user}\"}}");
    let request = format!(
        "POST /register HTTP/1.1\r\nHost: tower\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    status.split(' ').nth(1).unwrap().parse().unwrap()
}

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

#[test]
fn onion_clients_are_rate_limited_per_connection_not_as_one_loopback_address() {
    let Some(tor) = Tor::start() else { return };
    let chain = Chain::start(0);
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("teos");
    let mut extra = tor.config();
    // One registration per minute and per client, no burst: a second one is refused at once (429).
    extra.extend([
        "register_rate_limit = 1".into(),
        "register_rate_burst = 1".into(),
    ]);
    let mut tower = TowerProcess::start(&chain, &datadir, &TowerOptions { extra });
    let (_, onion_target) = onion_event(&tower);
    let public: std::net::SocketAddr = ([127, 0, 0, 1], tower.api_port).into();

    // The public listener counts by IP: two connections from 127.0.0.1 share one limit.
    assert_eq!(register(&mut connect(public), 1), 200);
    assert_eq!(register(&mut connect(public), 2), 429);

    // The onion listener, where every Tor client is 127.0.0.1, counts each connection on its own.
    let mut first = connect(onion_target);
    assert_eq!(register(&mut first, 3), 200);
    assert_eq!(register(&mut connect(onion_target), 4), 200);
    assert_eq!(register(&mut connect(onion_target), 5), 200);
    assert_eq!(
        register(&mut first, 6),
        429,
        "one connection is still held to the rate"
    );
    assert!(tower.stop().success());
}
