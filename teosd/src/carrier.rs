//! The Carrier: hands transactions to bitcoind and says what became of them.
//!
//! Mapping of `sendrawtransaction` answers (PROTOCOL.md, "Responding"; BITCOIND.md): ok → in the
//! mempool (bitcoind also answers ok for a transaction already in its mempool; -26
//! "txn-already-in-mempool", "txn-already-known" and "txn-same-nonwitness-data-in-mempool" mean the
//! same); -27 "Transaction outputs already in utxo set" → already confirmed; -25 with
//! "missingorspent" → missing inputs; -26, other -25, -22 and other RPC errors → rejected (what the
//! Responder makes of each is in its module docs); transport errors → bitcoind unreachable: retry
//! with backoff, never drop (the call only gives up when the tower shuts down, and then the caller
//! does not record anything, so the work is redone after restart).
//!
//! `submitpackage` (a dispute and its penalty together, for a dispute bitcoind will not take alone:
//! BITCOIND.md, "Unconfirmed breaches and packages"): "success" → in the mempool; a refused
//! transaction (reported inside the answer) or a refused package shape (-25, -8, -22) → rejected.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bitcoin::Transaction;

use crate::bitcoind::{BitcoindRpc, RpcError, codes};
use crate::notify::Heartbeat;
use crate::shutdown::Shutdown;

/// What bitcoind did with a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Accepted into the mempool (or already there).
    InMempool,
    /// Already confirmed (-27).
    AlreadyConfirmed,
    /// Refused, with bitcoind's code and message.
    Rejected { code: i32, message: String },
}

impl Delivery {
    /// Whether the transaction is (or will be) on its way to the chain.
    pub fn is_ok(&self) -> bool {
        !matches!(self, Delivery::Rejected { .. })
    }

    /// Whether bitcoind refused it for a reason that may pass without changing the transaction: fees
    /// (its own, the mempool's minimum, a replacement's), mempool limits, a timelock not yet reached,
    /// a conflict still in the mempool, or the node's own `maxfeerate`. Consensus and script failures,
    /// dust, size and decoding errors never pass. Reasons are Bitcoin Core's reject reasons
    /// (BITCOIND.md, `sendrawtransaction`); an unknown reason is taken as one that may pass.
    pub fn may_pass_later(&self) -> bool {
        let Delivery::Rejected { code, message } = self else {
            return false;
        };
        if *code == codes::DESERIALIZATION_ERROR || self.is_missing_inputs() {
            return false;
        }
        const NEVER: [&str; 7] = [
            "bad-txns",
            "mandatory-script-verify-flag",
            "non-mandatory-script-verify-flag",
            "dust",
            "tx-size",
            "scriptsig",
            "scriptpubkey",
        ];
        message != "version" && !NEVER.iter().any(|reason| message.starts_with(reason))
    }

    /// Whether bitcoind refused it for its fee alone, so that a package with its parent may pass:
    /// -26 "min relay fee not met", "mempool min fee not met", "insufficient fee", or a TRUC
    /// (version 3) rule (BITCOIND.md, "Unconfirmed breaches and packages": a zero-fee version 3
    /// parent is refused alone and accepted with its fee-paying child).
    pub fn is_fee_refusal(&self) -> bool {
        matches!(self, Delivery::Rejected { code, message } if *code == codes::VERIFY_REJECTED
            && (message.contains("fee") || message.starts_with("TRUC") || message.starts_with("v3")))
    }

    /// Whether bitcoind refused it because an input is missing or spent (-25 bad-txns-inputs-missingorspent).
    pub fn is_missing_inputs(&self) -> bool {
        matches!(self, Delivery::Rejected { code, message } if *code == codes::VERIFY_ERROR && message.contains("missingorspent"))
    }
}

/// Whether a -26 refusal says the transaction (or one with the same txid) is already in the mempool.
fn already_in_mempool(message: &str) -> bool {
    [
        "txn-already-in-mempool",
        "txn-already-known",
        "txn-same-nonwitness-data-in-mempool",
    ]
    .iter()
    .any(|reason| message.contains(reason))
}

/// The tower is shutting down; the operation was not completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted by shutdown")]
pub struct Interrupted;

/// Sends transactions, retrying while bitcoind is unreachable.
pub struct Carrier<B: BitcoindRpc> {
    rpc: Arc<B>,
    reachable: Arc<AtomicBool>,
    shutdown: Arc<Shutdown>,
    max_backoff: Duration,
    /// Beaten while waiting for bitcoind: waiting is alive, not hung (see `notify`).
    heartbeat: Option<Arc<Heartbeat>>,
}

impl<B: BitcoindRpc> Carrier<B> {
    /// `reachable` is the tower's "bitcoind reachable" flag: cleared while retrying, set on an answer.
    pub fn new(rpc: Arc<B>, reachable: Arc<AtomicBool>, shutdown: Arc<Shutdown>) -> Carrier<B> {
        Carrier {
            rpc,
            reachable,
            shutdown,
            max_backoff: Duration::from_secs(5),
            heartbeat: None,
        }
    }

    /// Beats `heartbeat` on every retry.
    pub fn with_heartbeat(mut self, heartbeat: Arc<Heartbeat>) -> Carrier<B> {
        self.heartbeat = Some(heartbeat);
        self
    }

    /// The bitcoind client this carrier calls.
    pub fn rpc(&self) -> Arc<B> {
        self.rpc.clone()
    }

    /// Sends `tx` and classifies the answer. Blocks (retrying with backoff from 100 ms up to 5 s) while
    /// bitcoind is unreachable or warming up; returns [`Interrupted`] only if the tower shuts down.
    pub fn send(&self, tx: &Transaction) -> Result<Delivery, Interrupted> {
        let txid = tx.compute_txid();
        let result = self.retrying(|rpc| rpc.send_raw_transaction(tx))?;
        Ok(match result {
            Ok(sent) => {
                if sent != txid {
                    tracing::warn!(%txid, %sent, "bitcoind returned another txid");
                }
                Delivery::InMempool
            }
            Err(RpcError::Rpc { code, .. }) if code == codes::VERIFY_ALREADY_IN_CHAIN => {
                Delivery::AlreadyConfirmed
            }
            Err(RpcError::Rpc { code, message })
                if code == codes::VERIFY_REJECTED && already_in_mempool(&message) =>
            {
                Delivery::InMempool
            }
            Err(RpcError::Rpc { code, message }) => Delivery::Rejected { code, message },
            Err(e) => Delivery::Rejected {
                code: 0,
                message: e.to_string(),
            },
        })
    }

    /// Submits `txs` (one child with its parents, parents first) as a package with `submitpackage` and
    /// classifies the answer: [`Delivery::InMempool`] when every transaction is in the mempool,
    /// otherwise [`Delivery::Rejected`] with bitcoind's code (0 when the refusal is inside the
    /// answer) and reasons. Retries like [`Carrier::send`] while bitcoind is unreachable.
    pub fn send_package(&self, txs: &[Transaction]) -> Result<Delivery, Interrupted> {
        Ok(match self.retrying(|rpc| rpc.submit_package(txs))? {
            Ok(answer) if answer.is_success() => Delivery::InMempool,
            Ok(answer) => Delivery::Rejected {
                code: 0,
                message: std::iter::once(answer.message)
                    .chain(
                        answer
                            .errors
                            .into_iter()
                            .map(|(txid, e)| format!("{txid}: {e}")),
                    )
                    .collect::<Vec<_>>()
                    .join("; "),
            },
            Err(RpcError::Rpc { code, message }) => Delivery::Rejected { code, message },
            Err(e) => Delivery::Rejected {
                code: 0,
                message: e.to_string(),
            },
        })
    }

    /// Runs `call` until it gets an answer that is not transient, backing off in between.
    pub fn retrying<T>(
        &self,
        mut call: impl FnMut(&B) -> Result<T, RpcError>,
    ) -> Result<Result<T, RpcError>, Interrupted> {
        let mut backoff = Duration::from_millis(100);
        loop {
            if let Some(heartbeat) = &self.heartbeat {
                heartbeat.beat();
            }
            match call(&self.rpc) {
                Err(e) if e.is_transient() => {
                    if self.reachable.swap(false, Ordering::SeqCst) {
                        tracing::warn!("bitcoind unreachable, retrying: {e}");
                    }
                    if self.shutdown.wait_timeout(backoff) {
                        return Err(Interrupted);
                    }
                    backoff = (backoff * 2).min(self.max_backoff);
                }
                answer => {
                    if !self.reachable.swap(true, Ordering::SeqCst) {
                        tracing::info!("bitcoind reachable again");
                    }
                    return Ok(answer);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The mapping of `sendrawtransaction` answers, with Bitcoin Core's codes and messages
    //! (BITCOIND.md, `bitcoind/rpc.json`, `bitcoind/mempool.json`).

    use bitcoin::absolute::LockTime;
    use bitcoin::transaction::Version;

    use super::*;
    use crate::bitcoind::fake::FakeBitcoind;

    fn delivery(answer: Result<bitcoin::Txid, RpcError>) -> Delivery {
        let tx = Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: Vec::new(),
            output: Vec::new(),
        };
        let bitcoind = Arc::new(FakeBitcoind::new(0));
        bitcoind.script_send(tx.compute_txid(), vec![answer]);
        let carrier = Carrier::new(
            bitcoind,
            Arc::new(AtomicBool::new(true)),
            Arc::new(Shutdown::new()),
        );
        carrier.send(&tx).unwrap()
    }

    fn rpc(code: i32, message: &str) -> Result<bitcoin::Txid, RpcError> {
        Err(RpcError::Rpc {
            code,
            message: message.into(),
        })
    }

    #[test]
    fn bitcoind_answers_map_to_deliveries() {
        let txid = bitcoin::Txid::from_raw_hash(bitcoin::hashes::Hash::all_zeros());
        assert_eq!(delivery(Ok(txid)), Delivery::InMempool);
        assert_eq!(
            delivery(rpc(-27, "Transaction outputs already in utxo set")),
            Delivery::AlreadyConfirmed
        );
        for known in [
            "txn-already-in-mempool",
            "txn-already-known",
            "txn-same-nonwitness-data-in-mempool",
        ] {
            assert_eq!(delivery(rpc(-26, known)), Delivery::InMempool, "{known}");
        }
        let missing = delivery(rpc(-25, "bad-txns-inputs-missingorspent"));
        assert!(missing.is_missing_inputs() && !missing.is_ok());
        for refused in [
            (-26, "min relay fee not met, 0 < 110"),
            (-26, "mempool min fee not met, 110 < 2000"),
            (-26, "insufficient fee, rejecting replacement"),
            (-26, "non-final"),
            (
                -25,
                "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)",
            ),
            (-22, "TX decode failed"),
        ] {
            let d = delivery(rpc(refused.0, refused.1));
            assert!(!d.is_ok() && !d.is_missing_inputs(), "{refused:?}: {d:?}");
            assert_eq!(
                d.may_pass_later(),
                refused.1 != "TX decode failed",
                "{refused:?}"
            );
        }
        for never in [
            "mandatory-script-verify-flag-failed (Signature must be zero for failed CHECK(MULTI)SIG operation)",
            "bad-txns-in-belowout, value in (0.01) < value out (0.02)",
            "dust, tx with dust output must be 0-fee",
            "version",
        ] {
            assert!(!delivery(rpc(-26, never)).may_pass_later(), "{never}");
        }
        assert!(!missing.may_pass_later());
    }

    #[test]
    fn fee_refusals_are_told_apart_from_other_refusals() {
        for fee in [
            "min relay fee not met, 0 < 110",
            "mempool min fee not met, 110 < 2000",
            "insufficient fee, rejecting replacement",
            "TRUC-violation, tx would exceed descendant count limit",
        ] {
            assert!(delivery(rpc(-26, fee)).is_fee_refusal(), "{fee}");
        }
        for other in [
            (-26, "mandatory-script-verify-flag-failed"),
            (-25, "bad-txns-inputs-missingorspent"),
            (-22, "TX decode failed"),
        ] {
            assert!(
                !delivery(rpc(other.0, other.1)).is_fee_refusal(),
                "{other:?}"
            );
        }
        assert!(!Delivery::InMempool.is_fee_refusal());
    }

    #[test]
    fn package_answers_map_to_deliveries() {
        use crate::bitcoind::PackageAnswer;
        let bitcoind = Arc::new(FakeBitcoind::new(0));
        let txid = bitcoin::Txid::from_raw_hash(bitcoin::hashes::Hash::all_zeros());
        bitcoind.script_package(vec![
            Ok(PackageAnswer {
                message: "success".into(),
                errors: Vec::new(),
            }),
            Ok(PackageAnswer {
                message: "transaction failed".into(),
                errors: vec![(txid, "min relay fee not met".into())],
            }),
            Err(RpcError::Rpc {
                code: -25,
                message: "package topology disallowed".into(),
            }),
        ]);
        let carrier = Carrier::new(
            bitcoind,
            Arc::new(AtomicBool::new(true)),
            Arc::new(Shutdown::new()),
        );
        assert_eq!(carrier.send_package(&[]).unwrap(), Delivery::InMempool);
        assert!(matches!(
            carrier.send_package(&[]).unwrap(),
            Delivery::Rejected { code: 0, message } if message.contains("transaction failed") && message.contains("min relay fee")
        ));
        assert!(matches!(
            carrier.send_package(&[]).unwrap(),
            Delivery::Rejected { code: -25, .. }
        ));
    }
}
