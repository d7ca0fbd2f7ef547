//! systemd unit files for relive.
//!
//! - [`parse`]: the ini-like syntax (sections, continuations, comments) with line numbers.
//! - [`exec`]: Exec*= command lines: prefixes, quoting, `$VAR` expansion.
//! - [`specifier`]: `%n`, `%N`, `%i`, `%%` and friends.
//! - [`model`]: the typed unit that PID 1 acts on.
//! - [`load`]: the search path, drop-ins, `.wants/`/`.requires/`, aliases, templates.
//! - [`graph`]: dependency closure and start/stop ordering as pure functions.
//! - [`unit_name`]: unit name validity, templates and instances, escaping.

#![forbid(unsafe_code)]

pub mod calendar;
pub mod credentials;
pub mod devices;
pub mod directories;
pub mod enforcement;
pub mod error;
pub mod exec;
pub mod graph;
pub mod load;
pub mod model;
pub mod mount;
pub mod parse;
pub mod path;
pub mod process;
pub mod read;
pub mod resources;
pub mod sandbox;
pub mod scope;
pub mod socket;
pub mod specifier;
pub mod syscalls;
pub mod timer;
pub mod unit_name;
pub mod upgrade_policy;

pub use error::LoadError;
pub use graph::{CycleError, Graph};
pub use load::{generator_dirs, search_path, Loader, SYSTEM_UNIT_PATH};
pub use model::*;
pub use specifier::SpecifierContext;
