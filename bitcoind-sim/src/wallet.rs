//! A deterministic test wallet over a [`Node`]: it mines coins to itself, signs P2WPKH spends,
//! and builds Lightning-like breach pairs (a revoked commitment and the penalty spending its
//! `to_local` output through the revocation branch) for watchtower tests.
//!
//! Coins are never cached: every call scans the node's UTXO set and mempool for the wallet's
//! scripts, so they stay right across reorgs. Outputs used by transactions the wallet built but
//! nobody broadcast yet are remembered as reserved so two calls never spend the same coin.
//!
//! Every transaction is standard for Bitcoin Core: version 2, P2WPKH/P2WSH outputs above the dust
//! threshold, real BIP143 signatures (low-S, SIGHASH_ALL), 2 sat/vB fees. Two exceptions for
//! mempool tests: [`TestWallet::build_v3_breach`] makes a version 3 (TRUC) commitment paying no
//! fee, whose penalty pays for both (only a package gets them in), and
//! [`TestWallet::build_conflict`] makes a higher-fee spend of a transaction's wallet inputs (a
//! conflicting spend of a dispute's funding input, replacing it and its penalty).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use bitcoin::blockdata::opcodes::all::{OP_CHECKSIG, OP_CSV, OP_DROP, OP_ELSE, OP_ENDIF, OP_IF};
use bitcoin::blockdata::script::Builder;
use bitcoin::hashes::{Hash, sha256};
use bitcoin::locktime::absolute::LockTime;
use bitcoin::secp256k1::{All, Message, PublicKey, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{
    Address, Amount, CompressedPublicKey, KnownHrp, Network, OutPoint, ScriptBuf, Sequence,
    Transaction, TxIn, TxOut, Witness,
};

use crate::node::{Node, NodeError, OwnedOutput};

/// Fee rate of every transaction the wallet builds (satoshis per vbyte).
pub const FEE_RATE_SAT_PER_VB: u64 = 2;
/// Core's dust threshold for P2WPKH outputs at the default dust relay fee (satoshis).
const P2WPKH_DUST: u64 = 294;
/// Core's dust threshold for P2WSH outputs (satoshis).
const P2WSH_DUST: u64 = 330;
/// Blocks before a coinbase output can be spent.
const COINBASE_MATURITY: u32 = 100;
/// Largest DER signature plus sighash byte, used to size transactions before signing.
const MAX_SIG_LEN: usize = 73;

/// Wallet failures.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// No single spendable coin covers the amount plus fee (satoshis).
    #[error("no spendable coin covers {needed} sat ({available} spendable coins)")]
    InsufficientFunds { needed: u64, available: usize },
    /// The requested output would be dust or could not pay its own fee (satoshis).
    #[error("amount of {0} sat is too small for a standard output")]
    AmountTooSmall(u64),
    /// An input of the transaction to conflict with is not an unspent wallet coin of the chain.
    #[error("input {0} is not an unspent coin of this wallet")]
    UnknownCoin(OutPoint),
    /// Mining or a node query failed.
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// How a breach's transactions pay their fees.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BreachStyle {
    /// Version 2, each paying 2 sat/vB.
    Standard,
    /// Version 3 (TRUC): the commitment pays nothing, the penalty 2 sat/vB over both sizes.
    ZeroFeeV3,
}

/// A revoked commitment and its penalty, as a channel partner would hand them to a tower.
#[derive(Clone, Debug)]
pub struct Breach {
    /// Spends a wallet coin to the `to_local` P2WSH output (index 0) plus change.
    pub commitment: Transaction,
    /// Spends `commitment:0` through the revocation branch to a wallet address.
    pub penalty: Transaction,
    /// The revocation secret the penalty is signed with.
    pub revocation_key: SecretKey,
    pub revocation_pubkey: PublicKey,
    pub delayed_pubkey: PublicKey,
    /// BOLT3 `to_local` script: `OP_IF <revocationpubkey> OP_ELSE <to_self_delay> OP_CSV OP_DROP
    /// <local_delayedpubkey> OP_ENDIF OP_CHECKSIG`.
    pub witness_script: ScriptBuf,
    /// Relative delay of the non-revoked branch (blocks).
    pub to_self_delay: u16,
    /// Value of the `to_local` output.
    pub to_local_value: Amount,
}

/// A deterministic P2WPKH wallet (regtest), safe to share between threads.
pub struct TestWallet {
    secp: Secp256k1<All>,
    seed: u64,
    /// Next key index handed out by [`TestWallet::fresh_script`] and breach keys.
    next_key: AtomicU32,
    /// Scripts of every receiving key handed out (index 0 first).
    scripts: Mutex<Vec<(ScriptBuf, u32)>>,
    /// Outpoints spent by transactions built but maybe not broadcast.
    reserved: Mutex<HashSet<OutPoint>>,
}

impl TestWallet {
    /// A wallet whose keys are derived from `seed` (the same seed gives the same keys).
    pub fn new(seed: u64) -> TestWallet {
        let wallet = TestWallet {
            secp: Secp256k1::new(),
            seed,
            next_key: AtomicU32::new(1),
            scripts: Mutex::new(Vec::new()),
            reserved: Mutex::new(HashSet::new()),
        };
        let main = wallet.p2wpkh(0);
        lock(&wallet.scripts).push((main, 0));
        wallet
    }

    fn secret(&self, index: u32) -> SecretKey {
        let mut counter = 0u32;
        loop {
            let mut data = b"teosd-test-wallet".to_vec();
            data.extend_from_slice(&self.seed.to_le_bytes());
            data.extend_from_slice(&index.to_le_bytes());
            data.extend_from_slice(&counter.to_le_bytes());
            let digest = sha256::Hash::hash(&data).to_byte_array();
            if let Ok(key) = SecretKey::from_slice(&digest) {
                return key;
            }
            counter += 1;
        }
    }

    fn public(&self, index: u32) -> CompressedPublicKey {
        CompressedPublicKey(PublicKey::from_secret_key(&self.secp, &self.secret(index)))
    }

    fn p2wpkh(&self, index: u32) -> ScriptBuf {
        ScriptBuf::new_p2wpkh(&self.public(index).wpubkey_hash())
    }

    /// The wallet's main receiving script (P2WPKH of key 0).
    pub fn script_pubkey(&self) -> ScriptBuf {
        self.p2wpkh(0)
    }

    /// The main receiving address (`bcrt1q...`).
    pub fn address(&self) -> Address {
        Address::p2wpkh(&self.public(0), KnownHrp::from(Network::Regtest))
    }

    /// A new receiving script of the wallet, distinct from all earlier ones.
    pub fn fresh_script(&self) -> ScriptBuf {
        let index = self.next_key.fetch_add(1, Ordering::SeqCst);
        let script = self.p2wpkh(index);
        lock(&self.scripts).push((script.clone(), index));
        script
    }

    fn key_for(&self, script: &ScriptBuf) -> Option<u32> {
        lock(&self.scripts)
            .iter()
            .find(|(s, _)| s == script)
            .map(|(_, i)| *i)
    }

    /// Mines `coins` blocks paying the wallet, then 100 more (also to the wallet) so those
    /// `coins` coinbase outputs are mature (one more is, too: the first of the 100). Each is
    /// worth the regtest subsidy at its height (50 BTC, halving every 150 blocks).
    /// Errors: mining failures.
    pub fn fund(&self, node: &Node, coins: usize) -> Result<(), WalletError> {
        let script = self.script_pubkey();
        node.generate_to_script(coins as u32, &script)?;
        node.generate_to_script(COINBASE_MATURITY, &script)?;
        Ok(())
    }

    /// Coins the wallet can spend now: confirmed, mature, not spent by the mempool, not reserved;
    /// oldest first.
    pub fn spendable(&self, node: &Node) -> Vec<OwnedOutput> {
        let scripts: HashSet<ScriptBuf> =
            lock(&self.scripts).iter().map(|(s, _)| s.clone()).collect();
        let reserved = lock(&self.reserved).clone();
        node.outputs_to(&scripts)
            .into_iter()
            .filter(|o| {
                o.height.is_some() && !o.spent_in_mempool && !reserved.contains(&o.outpoint)
            })
            .filter(|o| !o.coinbase || o.confirmations >= COINBASE_MATURITY)
            .collect()
    }

    /// Sum of [`TestWallet::spendable`].
    pub fn balance(&self, node: &Node) -> Amount {
        self.spendable(node).iter().map(|o| o.txout.value).sum()
    }

    /// Forgets the reservations (after the transactions were dropped or never used).
    pub fn release_all(&self) {
        lock(&self.reserved).clear();
    }

    /// Picks one coin covering `needed` satoshis from `available`, reserving it.
    fn take_coin(
        &self,
        available: &mut Vec<OwnedOutput>,
        needed: u64,
    ) -> Result<OwnedOutput, WalletError> {
        let pos = available
            .iter()
            .position(|o| o.txout.value.to_sat() >= needed);
        let Some(pos) = pos else {
            return Err(WalletError::InsufficientFunds {
                needed,
                available: available.len(),
            });
        };
        let coin = available.remove(pos);
        lock(&self.reserved).insert(coin.outpoint);
        Ok(coin)
    }

    /// A signed transaction paying `amount` to `to` from one wallet coin, change to a fresh
    /// wallet script (dropped into the fee when below dust). Not broadcast.
    /// Errors: [`WalletError::InsufficientFunds`], [`WalletError::AmountTooSmall`].
    pub fn send(
        &self,
        node: &Node,
        to: &ScriptBuf,
        amount: Amount,
    ) -> Result<Transaction, WalletError> {
        let mut available = self.spendable(node);
        self.send_from(&mut available, to, amount)
    }

    fn send_from(
        &self,
        available: &mut Vec<OwnedOutput>,
        to: &ScriptBuf,
        amount: Amount,
    ) -> Result<Transaction, WalletError> {
        let payment = TxOut {
            value: amount,
            script_pubkey: to.clone(),
        };
        if amount.to_sat() < dust_threshold(to) {
            return Err(WalletError::AmountTooSmall(amount.to_sat()));
        }
        let change_script = self.fresh_script();
        let change_out = TxOut {
            value: Amount::ZERO,
            script_pubkey: change_script,
        };
        let fee_with_change = p2wpkh_spend_fee(&[payment.clone(), change_out.clone()]);
        let coin = self.take_coin(available, amount.to_sat() + fee_with_change)?;
        let change = coin.txout.value.to_sat() - amount.to_sat() - fee_with_change;
        let mut outputs = vec![payment];
        if change >= P2WPKH_DUST {
            outputs.push(TxOut {
                value: Amount::from_sat(change),
                ..change_out
            });
        }
        let tx = unsigned(
            vec![coin.outpoint],
            outputs,
            LockTime::ZERO,
            Sequence::ENABLE_RBF_NO_LOCKTIME,
        );
        self.sign_p2wpkh(tx, &coin)
    }

    /// Signs every input of `tx` (each spending the wallet P2WPKH output `prevouts[i]`).
    fn sign_inputs(
        &self,
        mut tx: Transaction,
        prevouts: &[TxOut],
    ) -> Result<Transaction, WalletError> {
        let mut witnesses = Vec::with_capacity(prevouts.len());
        {
            let mut cache = SighashCache::new(&tx);
            for (i, prevout) in prevouts.iter().enumerate() {
                let index = self.key_for(&prevout.script_pubkey).unwrap_or(0);
                let sighash = cache
                    .p2wpkh_signature_hash(
                        i,
                        &prevout.script_pubkey,
                        prevout.value,
                        EcdsaSighashType::All,
                    )
                    .map_err(|e| WalletError::Node(NodeError::Storage(format!("sighash: {e}"))))?;
                let msg = Message::from_digest(sighash.to_byte_array());
                let sig = bitcoin::ecdsa::Signature {
                    signature: self.secp.sign_ecdsa(&msg, &self.secret(index)),
                    sighash_type: EcdsaSighashType::All,
                };
                witnesses.push(Witness::p2wpkh(&sig, &self.public(index).0));
            }
        }
        for (input, witness) in tx.input.iter_mut().zip(witnesses) {
            input.witness = witness;
        }
        Ok(tx)
    }

    fn sign_p2wpkh(&self, tx: Transaction, coin: &OwnedOutput) -> Result<Transaction, WalletError> {
        self.sign_inputs(tx, std::slice::from_ref(&coin.txout))
    }

    /// One breach pair: a commitment spending a wallet coin to a BOLT3 `to_local` output of
    /// `value` (with `to_self_delay` blocks of delay) plus change, and the penalty sweeping that
    /// output with the revocation key to a fresh wallet script at 2 sat/vB. Neither is broadcast.
    /// Errors: [`WalletError::InsufficientFunds`], [`WalletError::AmountTooSmall`].
    pub fn build_breach(
        &self,
        node: &Node,
        value: Amount,
        to_self_delay: u16,
    ) -> Result<Breach, WalletError> {
        let mut available = self.spendable(node);
        self.breach_from(&mut available, value, to_self_delay)
    }

    /// A breach pair funded from `coins` the caller found itself — e.g. over RPC when the node runs in
    /// another process (the demo). The coins must pay to this wallet's scripts (`script_pubkey()`).
    /// Errors: [`WalletError::InsufficientFunds`], [`WalletError::AmountTooSmall`].
    pub fn build_breach_from(
        &self,
        mut coins: Vec<OwnedOutput>,
        value: Amount,
        to_self_delay: u16,
    ) -> Result<Breach, WalletError> {
        self.breach_from(&mut coins, value, to_self_delay)
    }

    /// Like [`TestWallet::build_breach`], but both transactions are version 3 (TRUC) and the
    /// commitment pays ZERO fee: Core refuses it alone (-26 "min relay fee not met, 0 < N";
    /// testmempoolaccept `allowed: false`), so the dispute can only enter the mempool with the
    /// penalty as a package (`submitpackage [commitment, penalty]`), the penalty paying 2 sat/vB
    /// over the sizes of both. The commitment has no anchor outputs (unlike Lightning's).
    /// Errors: as [`TestWallet::build_breach`].
    pub fn build_v3_breach(
        &self,
        node: &Node,
        value: Amount,
        to_self_delay: u16,
    ) -> Result<Breach, WalletError> {
        let mut available = self.spendable(node);
        self.breach_styled(&mut available, value, to_self_delay, BreachStyle::ZeroFeeV3)
    }

    /// A transaction spending the same wallet coins as `tx` (e.g. a breach commitment's funding
    /// input: the channel's funding output, as the cheater could spend it another way) to one
    /// fresh wallet script, paying more than `tx` and its in-mempool descendants together (their
    /// fees doubled plus 10 sat/vB of its own size), so Core's replace-by-fee rules let it evict
    /// them all. Works whether or not `tx` is in the mempool. Not broadcast.
    /// Errors: [`WalletError::UnknownCoin`] when an input of `tx` is not an unspent wallet coin
    /// of the active chain; [`WalletError::AmountTooSmall`] when the coins cannot pay that fee.
    pub fn build_conflict(
        &self,
        node: &Node,
        tx: &Transaction,
    ) -> Result<Transaction, WalletError> {
        let mut coins = Vec::with_capacity(tx.input.len());
        for input in &tx.input {
            let outpoint = input.previous_output;
            let info = node
                .get_tx_out(&outpoint, false)
                .filter(|i| self.key_for(&i.txout.script_pubkey).is_some())
                .ok_or(WalletError::UnknownCoin(outpoint))?;
            coins.push((outpoint, info.txout));
        }
        let value_in: u64 = coins.iter().map(|(_, o)| o.value.to_sat()).sum();
        let value_out: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
        let own_fee = value_in.saturating_sub(value_out);
        let txid = tx.compute_txid();
        let replaced_fees = node
            .mempool_entry(&txid)
            .map_or(own_fee, |e| e.descendant_fees.to_sat());
        let sweep = TxOut {
            value: Amount::ZERO,
            script_pubkey: self.fresh_script(),
        };
        let mut conflict = unsigned(
            coins.iter().map(|(o, _)| *o).collect(),
            vec![sweep],
            LockTime::ZERO,
            Sequence::ENABLE_RBF_NO_LOCKTIME,
        );
        let mut sized = conflict.clone();
        for input in &mut sized.input {
            input.witness = dummy_p2wpkh_witness();
        }
        let fee = 2 * replaced_fees + 10 * sized.vsize() as u64;
        if value_in < fee + P2WPKH_DUST {
            return Err(WalletError::AmountTooSmall(value_in));
        }
        conflict.output[0].value = Amount::from_sat(value_in - fee);
        let prevouts: Vec<TxOut> = coins.into_iter().map(|(_, o)| o).collect();
        self.sign_inputs(conflict, &prevouts)
    }

    /// A child spending output `vout` of `parent` (a wallet P2WPKH output, e.g. a commitment's
    /// change, as a cheater's fee-bumping child) to a fresh wallet script, paying `fee`, with
    /// `parent`'s version (so a child of a version 3 commitment is version 3 too). Not broadcast.
    /// With a zero-fee version 3 commitment, `submitpackage [commitment, child]` puts the dispute
    /// in the mempool; a penalty then competes with this child (Core's TRUC sibling eviction).
    /// Errors: [`WalletError::UnknownCoin`] when that output is not the wallet's;
    /// [`WalletError::AmountTooSmall`] when it cannot pay `fee` and keep a standard output.
    pub fn build_child(
        &self,
        parent: &Transaction,
        vout: u32,
        fee: Amount,
    ) -> Result<Transaction, WalletError> {
        let outpoint = OutPoint {
            txid: parent.compute_txid(),
            vout,
        };
        let prevout = parent
            .output
            .get(vout as usize)
            .filter(|o| self.key_for(&o.script_pubkey).is_some())
            .cloned()
            .ok_or(WalletError::UnknownCoin(outpoint))?;
        if prevout.value < fee + Amount::from_sat(P2WPKH_DUST) {
            return Err(WalletError::AmountTooSmall(prevout.value.to_sat()));
        }
        let sweep = TxOut {
            value: prevout.value - fee,
            script_pubkey: self.fresh_script(),
        };
        let mut child = unsigned(
            vec![outpoint],
            vec![sweep],
            LockTime::ZERO,
            Sequence::ENABLE_RBF_NO_LOCKTIME,
        );
        child.version = parent.version;
        self.sign_inputs(child, &[prevout])
    }

    /// `n` breach pairs, each spending a different wallet coin.
    pub fn build_breaches(
        &self,
        node: &Node,
        n: usize,
        value: Amount,
        to_self_delay: u16,
    ) -> Result<Vec<Breach>, WalletError> {
        let mut available = self.spendable(node);
        (0..n)
            .map(|_| self.breach_from(&mut available, value, to_self_delay))
            .collect()
    }

    fn breach_from(
        &self,
        available: &mut Vec<OwnedOutput>,
        value: Amount,
        to_self_delay: u16,
    ) -> Result<Breach, WalletError> {
        self.breach_styled(available, value, to_self_delay, BreachStyle::Standard)
    }

    fn breach_styled(
        &self,
        available: &mut Vec<OwnedOutput>,
        value: Amount,
        to_self_delay: u16,
        style: BreachStyle,
    ) -> Result<Breach, WalletError> {
        let number = self.next_key.fetch_add(2, Ordering::SeqCst);
        let revocation_key = self.secret(number);
        let revocation_pubkey = PublicKey::from_secret_key(&self.secp, &revocation_key);
        let delayed_pubkey = self.public(number + 1).0;
        let witness_script = to_local_script(&revocation_pubkey, &delayed_pubkey, to_self_delay);
        let to_local = TxOut {
            value,
            script_pubkey: ScriptBuf::new_p2wsh(&witness_script.wscript_hash()),
        };
        if value.to_sat() < P2WSH_DUST {
            return Err(WalletError::AmountTooSmall(value.to_sat()));
        }
        let commitment = self.commitment(available, to_local, u64::from(number), style)?;
        let penalty = self.penalty(&commitment, &witness_script, &revocation_key, style)?;
        Ok(Breach {
            commitment,
            penalty,
            revocation_key,
            revocation_pubkey,
            delayed_pubkey,
            witness_script,
            to_self_delay,
            to_local_value: value,
        })
    }

    /// A commitment-like transaction: BOLT3's obscured commitment number in the lock time
    /// (upper byte 0x20) and sequence (upper byte 0x80, so no relative lock).
    fn commitment(
        &self,
        available: &mut Vec<OwnedOutput>,
        to_local: TxOut,
        number: u64,
        style: BreachStyle,
    ) -> Result<Transaction, WalletError> {
        let value = to_local.value.to_sat();
        let change_out = TxOut {
            value: Amount::ZERO,
            script_pubkey: self.fresh_script(),
        };
        let fee = match style {
            BreachStyle::Standard => p2wpkh_spend_fee(&[to_local.clone(), change_out.clone()]),
            BreachStyle::ZeroFeeV3 => 0,
        };
        let coin = self.take_coin(available, value + fee)?;
        let change = coin.txout.value.to_sat() - value - fee;
        let mut outputs = vec![to_local];
        if change >= P2WPKH_DUST {
            outputs.push(TxOut {
                value: Amount::from_sat(change),
                ..change_out
            });
        }
        let obscured = number & 0xffff_ffff_ffff;
        let lock_time = LockTime::from_consensus(0x2000_0000 | (obscured & 0xff_ffff) as u32);
        let sequence = Sequence(0x8000_0000 | (obscured >> 24) as u32);
        let mut tx = unsigned(vec![coin.outpoint], outputs, lock_time, sequence);
        if style == BreachStyle::ZeroFeeV3 {
            tx.version = Version(3);
        }
        self.sign_p2wpkh(tx, &coin)
    }

    /// Spends `commitment:0` through the revocation branch (witness `<sig> 1 <script>`).
    fn penalty(
        &self,
        commitment: &Transaction,
        witness_script: &ScriptBuf,
        revocation_key: &SecretKey,
        style: BreachStyle,
    ) -> Result<Transaction, WalletError> {
        let value = commitment.output[0].value;
        let sweep = TxOut {
            value: Amount::ZERO,
            script_pubkey: self.fresh_script(),
        };
        let outpoint = OutPoint {
            txid: commitment.compute_txid(),
            vout: 0,
        };
        let mut tx = unsigned(
            vec![outpoint],
            vec![sweep],
            LockTime::ZERO,
            Sequence::ENABLE_RBF_NO_LOCKTIME,
        );
        tx.input[0].witness = revocation_witness(&[0u8; MAX_SIG_LEN], witness_script);
        let paid_for = match style {
            BreachStyle::Standard => tx.vsize(),
            BreachStyle::ZeroFeeV3 => {
                tx.version = Version(3);
                tx.vsize() + commitment.vsize()
            }
        };
        let fee = paid_for as u64 * FEE_RATE_SAT_PER_VB;
        if value.to_sat() < fee + P2WPKH_DUST {
            return Err(WalletError::AmountTooSmall(value.to_sat()));
        }
        tx.output[0].value = value - Amount::from_sat(fee);
        let sighash = SighashCache::new(&tx)
            .p2wsh_signature_hash(0, witness_script, value, EcdsaSighashType::All)
            .map_err(|e| WalletError::Node(NodeError::Storage(format!("sighash: {e}"))))?;
        let sig = self.secp.sign_ecdsa(
            &Message::from_digest(sighash.to_byte_array()),
            revocation_key,
        );
        let sig = bitcoin::ecdsa::Signature {
            signature: sig,
            sighash_type: EcdsaSighashType::All,
        };
        tx.input[0].witness = revocation_witness(&sig.serialize(), witness_script);
        Ok(tx)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// BOLT3's `to_local` witness script.
pub fn to_local_script(
    revocation: &PublicKey,
    delayed: &PublicKey,
    to_self_delay: u16,
) -> ScriptBuf {
    Builder::new()
        .push_opcode(OP_IF)
        .push_slice(revocation.serialize())
        .push_opcode(OP_ELSE)
        .push_int(i64::from(to_self_delay))
        .push_opcode(OP_CSV)
        .push_opcode(OP_DROP)
        .push_slice(delayed.serialize())
        .push_opcode(OP_ENDIF)
        .push_opcode(OP_CHECKSIG)
        .into_script()
}

fn revocation_witness(sig: &[u8], witness_script: &ScriptBuf) -> Witness {
    let mut w = Witness::new();
    w.push(sig);
    w.push([1u8]);
    w.push(witness_script.as_bytes());
    w
}

fn unsigned(
    inputs: Vec<OutPoint>,
    output: Vec<TxOut>,
    lock_time: LockTime,
    sequence: Sequence,
) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time,
        input: inputs
            .into_iter()
            .map(|previous_output| TxIn {
                previous_output,
                script_sig: ScriptBuf::new(),
                sequence,
                witness: Witness::new(),
            })
            .collect(),
        output,
    }
}

/// A P2WPKH witness of the largest size, to size transactions before signing.
fn dummy_p2wpkh_witness() -> Witness {
    let mut w = Witness::new();
    w.push([0u8; MAX_SIG_LEN]);
    w.push([0u8; 33]);
    w
}

/// Fee (satoshis) of a one-input P2WPKH spend with `outputs`, sized with the largest signature.
fn p2wpkh_spend_fee(outputs: &[TxOut]) -> u64 {
    let mut tx = unsigned(
        vec![OutPoint::null()],
        outputs.to_vec(),
        LockTime::ZERO,
        Sequence::MAX,
    );
    tx.input[0].witness = dummy_p2wpkh_witness();
    tx.vsize() as u64 * FEE_RATE_SAT_PER_VB
}

fn dust_threshold(script: &ScriptBuf) -> u64 {
    let size = 8 + 1 + script.len() as u64;
    let extra = if script.is_witness_program() {
        32 + 4 + 1 + 26 + 4
    } else {
        32 + 4 + 1 + 107 + 4
    };
    (size + extra) * 3
}
