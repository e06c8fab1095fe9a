//! teosd (placeholder).

pub mod config;
pub mod storage;
