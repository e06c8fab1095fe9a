//! Shared protocol code (placeholder).
