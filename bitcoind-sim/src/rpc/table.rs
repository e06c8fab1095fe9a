//! The method table (Core's `CRPCTable`): name, parameters, usage text, handler.

use super::envelope::{Json, Request};
use super::error::RpcError;
use super::params::{Arg, ArgType::*, Args, opt, req};
use super::{RpcContext, blockchain, mempool, mining, network, package, rawtransaction};

type Handler = fn(&RpcContext, &Args) -> Result<Json, RpcError>;

/// One RPC method.
pub struct Method {
    pub name: &'static str,
    pub args: &'static [Arg],
    /// First line of Core's help, e.g. `getblockheader "blockhash" ( verbose )`.
    pub usage: &'static str,
    /// One-line description (second paragraph of the help).
    pub summary: &'static str,
    pub handler: Handler,
}

macro_rules! method {
    ($name:literal, $usage:literal, $summary:literal, [$($arg:expr),* $(,)?], $handler:path) => {
        Method { name: $name, args: &[$($arg),*], usage: $usage, summary: $summary, handler: $handler }
    };
}

/// Every method the simulator answers; anything else is -32601 "Method not found".
pub const METHODS: &[Method] = &[
    method!(
        "getblockchaininfo",
        "getblockchaininfo",
        "Returns an object containing various state info regarding blockchain processing.",
        [],
        blockchain::getblockchaininfo
    ),
    method!(
        "getblockcount",
        "getblockcount",
        "Returns the height of the most-work fully-validated chain.",
        [],
        blockchain::getblockcount
    ),
    method!(
        "getbestblockhash",
        "getbestblockhash",
        "Returns the hash of the best (tip) block in the most-work fully-validated chain.",
        [],
        blockchain::getbestblockhash
    ),
    method!(
        "getblockhash",
        "getblockhash height",
        "Returns hash of block in best-block-chain at height provided.",
        [req("height", Num)],
        blockchain::getblockhash
    ),
    method!(
        "getblockheader",
        "getblockheader \"blockhash\" ( verbose )",
        "If verbose is false, returns a string that is serialized, hex-encoded data for blockheader 'hash'.",
        [req("blockhash", Str), opt("verbose", Bool)],
        blockchain::getblockheader
    ),
    method!(
        "getblock",
        "getblock \"blockhash\" ( verbosity )",
        "If verbosity is 0, returns a string that is serialized, hex-encoded data for block 'hash'.",
        [req("blockhash", Str), opt("verbosity|verbose", Any)],
        blockchain::getblock
    ),
    method!(
        "getchaintips",
        "getchaintips",
        "Return information about all known tips in the block tree, including the main chain as well as orphaned branches.",
        [],
        blockchain::getchaintips
    ),
    method!(
        "invalidateblock",
        "invalidateblock \"blockhash\"",
        "Permanently marks a block as invalid, as if it violated a consensus rule.",
        [req("blockhash", Str)],
        blockchain::invalidateblock
    ),
    method!(
        "reconsiderblock",
        "reconsiderblock \"blockhash\"",
        "Removes invalidity status of a block, its ancestors and its descendants, reconsider them for activation.",
        [req("blockhash", Str)],
        blockchain::reconsiderblock
    ),
    method!(
        "getrawtransaction",
        "getrawtransaction \"txid\" ( verbosity \"blockhash\" )",
        "By default, this call only returns a transaction if it is in the mempool. If -txindex is enabled and no blockhash argument is passed, it will return the transaction if it is in a block in the blockchain.",
        [
            req("txid", Str),
            opt("verbosity|verbose", Any),
            opt("blockhash", Str)
        ],
        rawtransaction::getrawtransaction
    ),
    method!(
        "decoderawtransaction",
        "decoderawtransaction \"hexstring\" ( iswitness )",
        "Return a JSON object representing the serialized, hex-encoded transaction.",
        [req("hexstring", Str), opt("iswitness", Bool)],
        rawtransaction::decoderawtransaction
    ),
    method!(
        "sendrawtransaction",
        "sendrawtransaction \"hexstring\" ( maxfeerate maxburnamount )",
        "Submit a raw transaction (serialized, hex-encoded) to local node and network.",
        [
            req("hexstring", Str),
            opt("maxfeerate", Any),
            opt("maxburnamount", Any)
        ],
        mempool::sendrawtransaction
    ),
    method!(
        "testmempoolaccept",
        "testmempoolaccept [\"rawtx\",...] ( maxfeerate )",
        "Returns result of mempool acceptance tests indicating if raw transaction(s) (serialized, hex-encoded) would be accepted by mempool.",
        [req("rawtxs", Arr), opt("maxfeerate", Any)],
        mempool::testmempoolaccept
    ),
    method!(
        "submitpackage",
        "submitpackage [\"rawtx\",...] ( maxfeerate maxburnamount )",
        "Submit a package of raw transactions (serialized, hex-encoded) to local node.",
        [
            req("package", Arr),
            opt("maxfeerate", Any),
            opt("maxburnamount", Any)
        ],
        package::submitpackage
    ),
    method!(
        "gettxspendingprevout",
        "gettxspendingprevout [{\"txid\":\"hex\",\"vout\":n},...]",
        "Scans the mempool to find transactions spending any of the given outputs",
        [req("outputs", Arr)],
        mempool::gettxspendingprevout
    ),
    method!(
        "getrawmempool",
        "getrawmempool ( verbose mempool_sequence )",
        "Returns all transaction ids in memory pool as a json array of string transaction ids.",
        [opt("verbose", Bool), opt("mempool_sequence", Bool)],
        mempool::getrawmempool
    ),
    method!(
        "getmempoolentry",
        "getmempoolentry \"txid\"",
        "Returns mempool data for given transaction",
        [req("txid", Str)],
        mempool::getmempoolentry
    ),
    method!(
        "getmempoolinfo",
        "getmempoolinfo",
        "Returns details on the active state of the TX memory pool.",
        [],
        mempool::getmempoolinfo
    ),
    method!(
        "generatetoaddress",
        "generatetoaddress nblocks \"address\" ( maxtries )",
        "Mine to a specified address and return the block hashes.",
        [
            req("nblocks", Num),
            req("address", Str),
            opt("maxtries", Num)
        ],
        mining::generatetoaddress
    ),
    method!(
        "generateblock",
        "generateblock \"output\" [\"rawtx/txid\",...] ( submit )",
        "Mine a set of ordered transactions to a specified address or descriptor and return the block hash.",
        [
            req("output", Str),
            req("transactions", Arr),
            opt("submit", Bool)
        ],
        mining::generateblock
    ),
    method!(
        "estimatesmartfee",
        "estimatesmartfee conf_target ( \"estimate_mode\" )",
        "Estimates the approximate fee per kilobyte needed for a transaction to begin confirmation within conf_target blocks if possible and return the number of blocks for which the estimate is valid.",
        [req("conf_target", Num), opt("estimate_mode", Str)],
        mining::estimatesmartfee
    ),
    method!(
        "getnetworkinfo",
        "getnetworkinfo",
        "Returns an object containing various state info regarding P2P networking.",
        [],
        network::getnetworkinfo
    ),
    method!(
        "getzmqnotifications",
        "getzmqnotifications",
        "Returns information about the active ZeroMQ notifications.",
        [],
        network::getzmqnotifications
    ),
    method!(
        "uptime",
        "uptime",
        "Returns the total uptime of the server.",
        [],
        network::uptime
    ),
    method!(
        "stop",
        "stop",
        "Request a graceful shutdown of Bitcoin Core.",
        [opt("wait", Num)],
        network::stop
    ),
];

/// Looks `request.method` up, checks its parameters and runs it.
pub fn execute(ctx: &RpcContext, request: &Request) -> Result<Json, RpcError> {
    let method = METHODS
        .iter()
        .find(|m| m.name == request.method)
        .ok_or_else(RpcError::method_not_found)?;
    let help = format!("{}\n\n{}\n", method.usage, method.summary);
    let args = Args::bind(method.args, &request.params, &help)?;
    (method.handler)(ctx, &args)
}
