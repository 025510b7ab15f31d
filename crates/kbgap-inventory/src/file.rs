//! File-reading conveniences over the pure parsers (the only module here that does I/O).

use crate::device::Device;
use crate::error::InventoryError;
use std::path::Path;

/// Reads `path` and parses it with [`crate::parse_any`]; the source name is the path as given.
pub fn parse_file(path: &Path) -> Result<Device, InventoryError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| InventoryError::new(&name, None, format!("cannot read file: {e}")))?;
    crate::detect::parse_any(&bytes, &name)
}
