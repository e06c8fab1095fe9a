//! The end-to-end demo: bitcoind-sim (in this process, serving JSON-RPC and ZMQ on loopback as a
//! bitcoind would) and teosd as a real process; a Lightning client registers, hands the tower an
//! appointment, a cheater broadcasts a revoked commitment, and the tower answers from bitcoind's
//! mempool with the penalty before any block, so both confirm in the same block. Every step is
//! printed, teosd's log lines indented among them.
//!
//! Run it with `./scripts/demo.sh` (it builds the teosd binary this program starts). Everything
//! runs through teos-testkit, the harness of the end-to-end tests.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bitcoin::Amount;
use teos_common::appointment::{Appointment, Locator};
use teos_common::cryptography;
use teos_common::protocol::GetAppointmentResponse;
use teos_testkit::{Chain, ChainConfig, Launch, TowerConfig, TowerProcess, User, wait_until};

/// Value of Alice's revoked `to_local` output, and its delay (blocks).
const CHANNEL_VALUE: Amount = Amount::from_sat(10_000_000);
const TO_SELF_DELAY: u16 = 144;

fn main() -> anyhow::Result<()> {
    let teosd = teosd_binary()?;

    // 1. bitcoind (the simulator) on loopback; 2. Alice's wallet gets a mature coin.
    let chain = Chain::start_with(&ChainConfig {
        wallet_seed: 2026,
        coins: 1,
        zmq: true,
    })?;
    let sim = chain.sim();
    println!(
        "== teosd demo (working directory {})",
        chain.dir.path().display()
    );
    println!(
        "[1] bitcoind-sim up: RPC {}, ZMQ {}",
        sim.rpc_url(),
        sim.zmq_endpoint().unwrap_or_default()
    );
    println!(
        "[2] mined {} blocks; Alice owns {}",
        chain.height(),
        chain.wallet.balance(&sim.node())
    );

    // 3. The tower, as its own process.
    let datadir = chain.dir.path().join("teos");
    TowerConfig::new(&datadir).write(sim)?;
    let mut launch = Launch::new(&teosd, &datadir);
    launch.echo = Some("      | teosd: ".into());
    let tower = TowerProcess::start(&launch, Duration::from_secs(60))?;
    let ready = tower
        .ready()
        .context("teosd reported no addresses")?
        .clone();
    println!(
        "[3] teosd ready: tower id {}, API {}, admin API {}",
        ready.tower_id,
        ready.url(),
        ready.admin
    );

    // 4. Alice registers (the receipt's signature is checked against the tower id).
    let (alice_sk, _) = cryptography::get_random_keypair();
    let alice = User::with_key(&ready.url(), alice_sk).verifying(ready.tower_id);
    let registration = alice.register()?;
    println!(
        "[4] Alice registered: {} slots until block {} (receipt signed by the tower)",
        registration.available_slots, registration.subscription_expiry
    );

    // 5. A channel update revokes a commitment: Alice hands the penalty to the tower, encrypted.
    let breach = chain
        .wallet
        .build_breach(&sim.node(), CHANNEL_VALUE, TO_SELF_DELAY)?;
    let (commitment, penalty) = (breach.commitment, breach.penalty);
    let dispute_txid = commitment.compute_txid();
    let appointment = Appointment {
        locator: Locator::new(&dispute_txid),
        encrypted_blob: cryptography::encrypt(&penalty, &dispute_txid),
        to_self_delay: u32::from(TO_SELF_DELAY),
    };
    let receipt = alice.add(&appointment)?;
    println!(
        "[5] appointment {} accepted at block {} ({} bytes of encrypted penalty; receipt signed)",
        appointment.locator,
        receipt.start_block,
        appointment.encrypted_blob.len()
    );
    println!(
        "    get_appointment: {}",
        status_name(&alice.get(&appointment.locator)?)
    );

    // 6. The cheater broadcasts the revoked commitment; it waits in bitcoind's mempool.
    chain.broadcast(&commitment)?;
    let broadcast_at = Instant::now();
    let height = chain.height();
    println!(
        "[6] cheater broadcasts the revoked commitment {dispute_txid}: in bitcoind's mempool, not mined"
    );

    // 7. The tower sees it in the mempool and sends the penalty, its child, at once.
    let penalty_txid = penalty.compute_txid();
    wait_until(
        "the penalty in bitcoind's mempool",
        Duration::from_secs(30),
        || chain.in_mempool(&penalty_txid),
    )?;
    println!(
        "[7] penalty {penalty_txid} in bitcoind's mempool {} ms after the commitment, before any block \
         (block height still {height})",
        broadcast_at.elapsed().as_millis()
    );
    wait_until(
        "Alice's appointment answered",
        Duration::from_secs(30),
        || {
            matches!(
                alice.get(&appointment.locator),
                Ok(GetAppointmentResponse::DisputeResponded(_))
            )
        },
    )?;
    println!("    get_appointment: dispute_responded");

    // 8. The next block takes both: the cheater gains nothing from the block they hoped to win.
    let block = chain.mine(1)[0];
    if chain.confirmations(&dispute_txid) != 1 || chain.confirmations(&penalty_txid) != 1 {
        bail!("the commitment and the penalty are not both in block {block}");
    }
    println!(
        "[8] commitment and penalty confirmed together in block {block}: Alice recovered {} of the \
         cheater's funds",
        penalty.output.iter().map(|o| o.value).sum::<Amount>()
    );

    // 9. Graceful shutdown.
    let status = tower.stop(Duration::from_secs(30))?;
    println!("[9] teosd stopped on SIGTERM ({status})");
    if !status.success() {
        bail!("teosd exited with {status}");
    }
    println!(
        "== demo complete: breach answered from the mempool, penalty confirmed in the dispute's block"
    );
    Ok(())
}

fn status_name(response: &GetAppointmentResponse) -> &'static str {
    match response {
        GetAppointmentResponse::BeingWatched(_) => "being_watched",
        GetAppointmentResponse::DisputeResponded(_) => "dispute_responded",
    }
}

/// `target/<profile>/teosd`: this example lives in `target/<profile>/examples/`.
fn teosd_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let teosd = exe
        .parent()
        .and_then(Path::parent)
        .context("cannot locate the target directory")?
        .join("teosd");
    if !teosd.exists() {
        bail!(
            "{} not found: run ./scripts/demo.sh, which builds it",
            teosd.display()
        );
    }
    Ok(teosd)
}
