//! The pieces of `relivectl`, kept apart from the `relive` library because
//! nothing in PID 1 uses them. `src/bin/relivectl.rs` includes this folder
//! with `#[path]`.

pub mod cli;
pub mod client;
pub mod error;
pub mod list;
pub mod procfs;
pub mod status;
pub mod time;
pub mod upgrade;
