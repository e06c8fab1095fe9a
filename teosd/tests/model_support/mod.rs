//! Model-checked chain simulation (see `model_chain.rs`): the reference model ([`model`]), the
//! events and their generation ([`events`]), and the system under test ([`world`]).

pub mod events;
pub mod model;
pub mod world;

pub use crate::enabled;
