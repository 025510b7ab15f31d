//! Product naming: MSRC full product names to Defender-style normalised names (`windows_10`, `edge`).

/// A Defender-style product name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedProduct {
    /// Vendor, lower-case ("microsoft").
    pub vendor: String,
    /// Product, lower_snake ("windows_10").
    pub name: String,
}

/// Placeholder until the naming table lands.
pub fn normalized_name(_full_name: &str) -> Option<NormalizedProduct> {
    None
}
