//! The HTTP server: Defender-compatible routes over the fleet, plus kbgap's ingestion endpoints.
