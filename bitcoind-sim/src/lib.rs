//! bitcoind-sim: a regtest Bitcoin Core stand-in that answers JSON-RPC over HTTP and publishes ZMQ.
pub mod node;
