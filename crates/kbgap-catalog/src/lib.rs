//! The catalog: MSRC CVRF documents parsed into a typed model, product naming, and in-memory queries.
//!
//! This crate does no I/O: parsers take bytes and a source name (for error messages), and the
//! [`index::Catalog`] is built from documents the caller loaded.

pub mod cvrf;
pub mod index;
pub mod model;
pub mod products;

pub use cvrf::{parse_document, read_head, CvrfError, SourceFormat};
pub use index::{Catalog, CatalogStats, KbSummary};
pub use model::*;
