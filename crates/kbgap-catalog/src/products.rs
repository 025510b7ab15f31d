//! Product naming: MSRC full product names to Defender-style normalised names (`windows_10`, `edge`).
