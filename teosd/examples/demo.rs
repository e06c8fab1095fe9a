//! The end-to-end demo: bitcoind-sim and teosd as real processes, a Lightning client registers, hands
//! the tower an appointment, a cheater broadcasts a revoked commitment, and the tower answers with the
//! penalty, which is confirmed. Every step is printed.
//!
//! Run it with `./scripts/demo.sh` (it builds the binaries this program starts).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bitcoin::consensus::encode;
use bitcoin::{Amount, Block, OutPoint, Transaction};
use bitcoincore_rpc::{Auth, Client, RpcApi};
use bitcoind_sim::node::OwnedOutput;
use bitcoind_sim::wallet::TestWallet;
use teos_common::appointment::{Appointment, Locator, UserId};
use teos_common::client::TowerClient;
use teos_common::cryptography;
use teos_common::protocol::GetAppointmentResponse;

fn main() -> anyhow::Result<()> {
    let bin_dir = binaries_dir()?;
    let work = tempfile::tempdir()?;
    println!(
        "== teosd demo (working directory {})",
        work.path().display()
    );

    // 1. bitcoind (the simulator) as its own process.
    let mut bitcoind = Process::start(
        Command::new(bin_dir.join("bitcoind-sim"))
            .arg("--datadir")
            .arg(work.path().join("bitcoind"))
            .args(["--rpcport", "0", "--zmqpub", "tcp://127.0.0.1:0"]),
        "bitcoind-sim",
        "bitcoind-sim: rpc ",
    )?;
    let banner = bitcoind.ready_line.clone();
    let rpc_addr = field_after(&banner, "rpc ").context("no rpc address in the banner")?;
    let zmq = field_after(&banner, "zmq ").context("no zmq endpoint in the banner")?;
    let cookie = work.path().join("bitcoind/regtest/.cookie");
    let rpc = Client::new(
        &format!("http://{rpc_addr}"),
        Auth::CookieFile(cookie.clone()),
    )?;
    println!("[1] bitcoind-sim up: RPC {rpc_addr}, ZMQ {zmq}");

    // 2. Alice's wallet gets a mature coin.
    let wallet = TestWallet::new(2026);
    let hashes = rpc.generate_to_address(101, &wallet.address())?;
    let coin = coinbase_coin(&rpc, &hashes[0], 101)?;
    println!(
        "[2] mined 101 blocks; Alice owns {} in {}",
        coin.txout.value, coin.outpoint
    );

    // 3. The tower, as its own process.
    let datadir = work.path().join("teos");
    std::fs::create_dir_all(&datadir)?;
    let api_port = free_port()?;
    let (host, port) = rpc_addr.rsplit_once(':').context("bad rpc address")?;
    std::fs::write(
        datadir.join("teos.toml"),
        format!(
            "btc_network = \"regtest\"\nbtc_rpc_connect = \"{host}\"\nbtc_rpc_port = {port}\n\
             btc_rpc_cookie = \"{}\"\nbtc_zmq_hashblock = \"{zmq}\"\napi_port = {api_port}\nrpc_port = {}\n",
            cookie.display(),
            free_port()?
        ),
    )?;
    let mut teosd = Process::start(
        Command::new(bin_dir.join("teosd"))
            .arg("--datadir")
            .arg(&datadir),
        "teosd",
        "Tower ready",
    )?;
    let tower_id = field_after(&teosd.ready_line, "tower id ")
        .and_then(|id| id.trim_end_matches(',').parse::<UserId>().ok())
        .context("no tower id in the ready line")?;
    println!("[3] teosd ready: tower id {tower_id}, API http://127.0.0.1:{api_port}");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = TowerClient::new(format!("http://127.0.0.1:{api_port}")).with_tower_id(tower_id);

    // 4. Alice registers (the receipt's signature is checked against the tower id).
    let (alice_sk, alice_pk) = cryptography::get_random_keypair();
    let alice = UserId(alice_pk);
    let registration = runtime.block_on(client.register(&alice))?;
    println!(
        "[4] Alice registered: {} slots until block {} (receipt signed by the tower)",
        registration.available_slots, registration.subscription_expiry
    );

    // 5. A channel update revokes a commitment: Alice hands the penalty to the tower, encrypted.
    let breach = wallet.build_breach_from(vec![coin], Amount::from_sat(10_000_000), 144)?;
    let (commitment, penalty) = (breach.commitment, breach.penalty);
    let dispute_txid = commitment.compute_txid();
    let appointment = Appointment {
        locator: Locator::new(&dispute_txid),
        encrypted_blob: cryptography::encrypt(&penalty, &dispute_txid),
        to_self_delay: 144,
    };
    let receipt = runtime.block_on(client.add_appointment(&appointment, &alice_sk))?;
    println!(
        "[5] appointment {} accepted at block {} ({} bytes of encrypted penalty; receipt signed)",
        appointment.locator,
        receipt.start_block,
        appointment.encrypted_blob.len()
    );
    let status = runtime.block_on(client.get_appointment(&appointment.locator, &alice_sk))?;
    println!("    get_appointment: {}", status_name(&status));

    // 6. The cheater broadcasts the revoked commitment and it is mined.
    rpc.send_raw_transaction(&commitment)?;
    let breach_block = rpc.generate_to_address(1, &TestWallet::new(666).address())?[0];
    let mined_at = Instant::now();
    println!("[6] cheater's revoked commitment {dispute_txid} mined in block {breach_block}");

    // 7. The tower sees it and broadcasts the penalty.
    let penalty_txid = penalty.compute_txid();
    wait_for(Duration::from_secs(30), || {
        Ok(rpc.get_raw_mempool()?.contains(&penalty_txid))
    })
    .context("the penalty never reached bitcoind's mempool")?;
    println!(
        "[7] penalty {penalty_txid} in bitcoind's mempool {} ms after the block",
        mined_at.elapsed().as_millis()
    );
    let status = runtime.block_on(client.get_appointment(&appointment.locator, &alice_sk))?;
    println!("    get_appointment: {}", status_name(&status));

    // 8. The penalty confirms.
    let block = rpc.generate_to_address(1, &TestWallet::new(777).address())?[0];
    let confirmed: Transaction = rpc.get_raw_transaction(&penalty_txid, Some(&block))?;
    println!(
        "[8] penalty confirmed in block {block}: Alice recovered {} of the cheater's funds",
        confirmed.output.iter().map(|o| o.value).sum::<Amount>()
    );

    // 9. Graceful shutdown of both.
    let status = teosd.terminate()?;
    println!("[9] teosd stopped on SIGTERM ({status})");
    rpc.stop()?;
    bitcoind.wait(Duration::from_secs(30))?;
    if !status.success() {
        bail!("teosd exited with {status}");
    }
    println!("== demo complete: breach answered and penalty confirmed");
    Ok(())
}

fn status_name(response: &GetAppointmentResponse) -> &'static str {
    match response {
        GetAppointmentResponse::BeingWatched(_) => "being_watched",
        GetAppointmentResponse::DisputeResponded(_) => "dispute_responded",
    }
}

/// The coinbase output of `hash` (paying the wallet), mature at `tip_height`.
fn coinbase_coin(
    rpc: &Client,
    hash: &bitcoin::BlockHash,
    tip_height: u32,
) -> anyhow::Result<OwnedOutput> {
    let hex: String = rpc.call("getblock", &[hash.to_string().into(), 0.into()])?;
    let block: Block = encode::deserialize(&hex::decode(hex)?)?;
    let coinbase = &block.txdata[0];
    let height = block.bip34_block_height().map(|h| h as u32).unwrap_or(1);
    Ok(OwnedOutput {
        outpoint: OutPoint {
            txid: coinbase.compute_txid(),
            vout: 0,
        },
        txout: coinbase.output[0].clone(),
        height: Some(height),
        confirmations: tip_height + 1 - height,
        coinbase: true,
        spent_in_mempool: false,
    })
}

fn wait_for(
    timeout: Duration,
    mut done: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !done()? {
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// The text after `key` up to the next space.
fn field_after(line: &str, key: &str) -> Option<String> {
    let rest = &line[line.find(key)? + key.len()..];
    Some(rest.split_whitespace().next()?.to_owned())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `target/<profile>/` — this example lives in `target/<profile>/examples/`.
fn binaries_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("cannot locate the target directory")?;
    for bin in ["teosd", "bitcoind-sim"] {
        if !dir.join(bin).exists() {
            bail!(
                "{} not found: run ./scripts/demo.sh, which builds it",
                dir.join(bin).display()
            );
        }
    }
    Ok(dir.to_path_buf())
}

/// A child process whose output lines are echoed (indented) and watched for a "ready" line.
struct Process {
    child: Child,
    ready_line: String,
}

impl Process {
    fn start(command: &mut Command, name: &'static str, ready: &str) -> anyhow::Result<Process> {
        let mut child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let (tx, rx) = mpsc::channel::<String>();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    println!("      | {name}: {line}");
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(ready) => {
                    return Ok(Process {
                        child,
                        ready_line: line,
                    });
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    bail!("{name} did not become ready within 60 s");
                }
            }
        }
    }

    fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        self.wait(Duration::from_secs(30))
    }

    fn wait(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("process did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
