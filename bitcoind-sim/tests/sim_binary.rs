//! The `bitcoind-sim` binary as a script uses it: parse the startup line, talk RPC with the
//! cookie, stop with the `stop` RPC or SIGTERM, exit code 0, cookie deleted.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bitcoincore_rpc::{Auth, Client, RpcApi};

struct Running {
    child: Child,
    rpc_port: u16,
    zmq: String,
    control: String,
}

/// Starts the binary and reads its `bitcoind-sim: rpc ... zmq ... control ...` line.
fn launch(datadir: &std::path::Path, extra: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitcoind-sim"))
        .arg(format!("-datadir={}", datadir.display()))
        .args(["-regtest", "-rpcport=0", "--zmqpub", "tcp://127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&words[..2], ["bitcoind-sim:", "rpc"], "{line}");
    let rpc_port = words[2].rsplit(':').next().unwrap().parse().unwrap();
    Running {
        child,
        rpc_port,
        zmq: words[4].to_owned(),
        control: words[6].to_owned(),
    }
}

/// Waits for the process to exit (deadline 30 s) and returns its exit code.
fn exit_code(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    panic!("bitcoind-sim did not exit");
}

#[test]
fn stop_rpc_ends_the_process_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = launch(dir.path(), &["--txindex", "--controlport", "0"]);
    assert!(sim.zmq.starts_with("tcp://127.0.0.1:"));
    assert!(sim.control.starts_with("127.0.0.1:"));
    let cookie = dir.path().join("regtest").join(".cookie");
    let rpc = Client::new(
        &format!("http://127.0.0.1:{}", sim.rpc_port),
        Auth::CookieFile(cookie.clone()),
    )
    .unwrap();
    assert_eq!(rpc.get_block_count().unwrap(), 0);
    assert_eq!(rpc.get_zmq_notifications().unwrap()[0].address, sim.zmq);
    assert_eq!(rpc.stop().unwrap(), "Bitcoin Core stopping");
    assert_eq!(exit_code(&mut sim.child), Some(0));
    assert!(!cookie.exists());
}

#[cfg(unix)]
#[test]
fn sigterm_ends_the_process_cleanly_and_the_chain_persists() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = launch(dir.path(), &["--rpcuser", "u", "--rpcpassword", "p"]);
    let url = format!("http://127.0.0.1:{}", sim.rpc_port);
    let rpc = Client::new(&url, Auth::UserPass("u".into(), "p".into())).unwrap();
    let address = bitcoind_sim::Simulator::mining_address();
    let tip = rpc.generate_to_address(2, &address).unwrap()[1];
    let status = Command::new("kill")
        .args(["-TERM", &sim.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(exit_code(&mut sim.child), Some(0));

    let mut again = launch(dir.path(), &["--rpcuser", "u", "--rpcpassword", "p"]);
    let url = format!("http://127.0.0.1:{}", again.rpc_port);
    let rpc = Client::new(&url, Auth::UserPass("u".into(), "p".into())).unwrap();
    assert_eq!(rpc.get_best_block_hash().unwrap(), tip);
    rpc.stop().unwrap();
    assert_eq!(exit_code(&mut again.child), Some(0));
}

#[test]
fn bad_flags_exit_with_an_error() {
    let status = Command::new(env!("CARGO_BIN_EXE_bitcoind-sim"))
        .args(["--chain", "main", "--datadir", "x"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}
