//! One module per measured scenario.

pub mod baseline;
pub mod burst;
pub mod chat;
pub mod fanout;
pub mod idle;
pub mod signaling;
pub mod startup;
pub mod upload;
