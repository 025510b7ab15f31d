//! The assessment engine: a pure function of (catalog, device, settings) giving missing KBs with evidence.
//!
//! Flow: [`resolve`] maps the device to exact MSRC products; [`platform`] builds (and caches) the
//! platform's cumulative-update model; [`assess`] decides which fix groups are unfixed and which
//! KB to report for each; [`finding`] holds the answer with its evidence and dropped candidates.
//! Nothing here does I/O.

pub mod assess;
pub mod finding;
pub mod index;
pub mod platform;
pub mod resolve;
pub mod target;

pub use assess::{assess, Settings};
pub use finding::{Assessment, Confidence, DropReason, Dropped, Finding};
pub use index::EngineCatalog;
pub use target::{KbListState, OsTarget, Target};
