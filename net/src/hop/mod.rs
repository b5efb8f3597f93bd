//! The agent-to-agent hop: the `sluice` sink sends batches, the `sluice`
//! source receives them; each batch is acknowledged once the receiver's
//! channels accepted it. The wire format is in [`proto`].

pub mod frame;
pub mod frames;
pub mod proto;
pub mod sink;
pub mod source;
