//! Device inventory: the device model and the parsers that build it from what Windows hosts report.
//!
//! Every parser is pure: bytes plus a source name in, a [`Device`] (or an
//! [`InventoryError`] naming source and line) out. [`parse_any`] sniffs the format;
//! [`file::parse_file`] is the only I/O convenience.

pub mod decode;
pub mod detect;
pub mod device;
pub mod error;
pub mod file;
pub mod merge;
pub mod osquery;
pub mod qfe;
pub mod report;
pub mod setup;
pub mod systeminfo;
pub mod wua;

pub use decode::TextEncoding;
pub use detect::parse_any;
pub use device::{
    Arch, Device, Fact, FactField, HotfixListState, InstalledKb, MergeError, OsFamily, OsInfo,
    OtherHotfix, OtherHotfixKind, Software, SourceFormat,
};
pub use error::{InventoryError, InventoryWarning};
pub use file::parse_file;
pub use setup::DeviceSetup;
