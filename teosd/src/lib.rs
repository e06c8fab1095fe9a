//! teosd (placeholder).
