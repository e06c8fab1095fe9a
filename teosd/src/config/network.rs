//! The Bitcoin network the tower watches (`btc_network` / `--btcnetwork`).

use std::fmt;
use std::str::FromStr;

/// A Bitcoin network teosd can follow.
///
/// Parsed case-insensitively from the names rust-teos accepted plus the aliases users type:
/// `mainnet` | `main` | `bitcoin`, `testnet` | `test` | `testnet3`, `testnet4`, `signet`, `regtest`.
/// rust-teos had no testnet4; teosd adds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BtcNetwork {
    /// Bitcoin mainnet.
    Mainnet,
    /// Testnet3.
    Testnet,
    /// Testnet4 (BIP 94, Bitcoin Core 28+).
    Testnet4,
    /// The default signet.
    Signet,
    /// Local regression-test network.
    Regtest,
}

/// Every network, in the order documented to users.
const ALL: [BtcNetwork; 5] = [
    BtcNetwork::Mainnet,
    BtcNetwork::Testnet,
    BtcNetwork::Testnet4,
    BtcNetwork::Signet,
    BtcNetwork::Regtest,
];

impl BtcNetwork {
    /// The name bitcoind reports in `getblockchaininfo.chain` ("main", "test", "testnet4", "signet",
    /// "regtest"; Bitcoin Core `chainparamsbase.cpp` `ChainTypeToString`). teosd compares it with the
    /// node's answer at startup and uses it as the per-network directory name, as rust-teos did.
    pub fn chain_name(self) -> &'static str {
        match self {
            BtcNetwork::Mainnet => "main",
            BtcNetwork::Testnet => "test",
            BtcNetwork::Testnet4 => "testnet4",
            BtcNetwork::Signet => "signet",
            BtcNetwork::Regtest => "regtest",
        }
    }

    /// The canonical name written in `teos.toml` ("mainnet", "testnet", "testnet4", "signet",
    /// "regtest"); also what `Display` prints.
    pub fn config_name(self) -> &'static str {
        match self {
            BtcNetwork::Mainnet => "mainnet",
            BtcNetwork::Testnet => "testnet",
            BtcNetwork::Testnet4 => "testnet4",
            BtcNetwork::Signet => "signet",
            BtcNetwork::Regtest => "regtest",
        }
    }

    /// The matching `bitcoin::Network` (for addresses, genesis hashes, consensus parameters).
    pub fn bitcoin_network(self) -> bitcoin::Network {
        match self {
            BtcNetwork::Mainnet => bitcoin::Network::Bitcoin,
            BtcNetwork::Testnet => bitcoin::Network::Testnet,
            BtcNetwork::Testnet4 => bitcoin::Network::Testnet4,
            BtcNetwork::Signet => bitcoin::Network::Signet,
            BtcNetwork::Regtest => bitcoin::Network::Regtest,
        }
    }

    /// bitcoind's default JSON-RPC port on this network (Bitcoin Core `chainparamsbase.cpp`):
    /// 8332, 18332, 48332, 38332, 18443. Used when `btc_rpc_port` is 0.
    pub fn default_rpc_port(self) -> u16 {
        match self {
            BtcNetwork::Mainnet => 8332,
            BtcNetwork::Testnet => 18332,
            BtcNetwork::Testnet4 => 48332,
            BtcNetwork::Signet => 38332,
            BtcNetwork::Regtest => 18443,
        }
    }

    /// Every network, mainnet first.
    pub fn all() -> [BtcNetwork; 5] {
        ALL
    }
}

impl fmt::Display for BtcNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.config_name())
    }
}

/// The error of parsing an unknown network name; its text lists the accepted names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown network {0:?} (expected mainnet/main/bitcoin, testnet/test, testnet4, signet or regtest)"
)]
pub struct UnknownNetwork(pub String);

impl FromStr for BtcNetwork {
    type Err = UnknownNetwork;

    /// Accepts the names listed on [`BtcNetwork`], ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "mainnet" | "main" | "bitcoin" => Ok(BtcNetwork::Mainnet),
            "testnet" | "test" | "testnet3" => Ok(BtcNetwork::Testnet),
            "testnet4" => Ok(BtcNetwork::Testnet4),
            "signet" => Ok(BtcNetwork::Signet),
            "regtest" => Ok(BtcNetwork::Regtest),
            _ => Err(UnknownNetwork(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_normalize_to_bitcoind_chain_names() {
        let cases = [
            ("mainnet", "main"),
            ("main", "main"),
            ("bitcoin", "main"),
            ("MAINNET", "main"),
            ("testnet", "test"),
            ("test", "test"),
            ("testnet4", "testnet4"),
            ("signet", "signet"),
            ("regtest", "regtest"),
        ];
        for (input, chain) in cases {
            let network: BtcNetwork = input.parse().unwrap();
            assert_eq!(network.chain_name(), chain, "{input}");
        }
    }

    #[test]
    fn config_name_parses_back_to_the_same_network() {
        for network in BtcNetwork::all() {
            assert_eq!(
                network.config_name().parse::<BtcNetwork>().unwrap(),
                network
            );
            assert_eq!(network.chain_name().parse::<BtcNetwork>().unwrap(), network);
        }
    }

    #[test]
    fn unknown_network_is_rejected_with_its_name() {
        let err = "liquid".parse::<BtcNetwork>().unwrap_err();
        assert!(err.to_string().contains("\"liquid\""), "{err}");
    }

    #[test]
    fn maps_to_bitcoin_network_and_default_port() {
        let expected = [
            (bitcoin::Network::Bitcoin, 8332),
            (bitcoin::Network::Testnet, 18332),
            (bitcoin::Network::Testnet4, 48332),
            (bitcoin::Network::Signet, 38332),
            (bitcoin::Network::Regtest, 18443),
        ];
        for (network, (btc, port)) in BtcNetwork::all().into_iter().zip(expected) {
            assert_eq!(network.bitcoin_network(), btc);
            assert_eq!(network.default_rpc_port(), port);
        }
    }
}
