//! MSRC CVRF API client: lists documents (`/cvrf/v3.0/updates`) and fetches them as XML, with retries.
//!
//! - [`MsrcClient`] talks to `{base}/cvrf/v3.0/...` (the public API at [`DEFAULT_BASE_URL`], or
//!   any mirror/test server serving the same paths); blocking, built on `ureq`.
//! - [`plan_sync`] is pure: given the remote list and the stored document heads it says what to
//!   fetch. [`run_sync`] fetches a plan and fills a [`SyncReport`].
//! - Every failure is an [`MsrcError`], one line naming the URL and the cause.

pub mod client;
pub mod error;
pub mod sniff;
pub mod sync;
pub mod updates;

pub use client::{ClientOptions, MsrcClient, DEFAULT_BASE_URL};
pub use error::MsrcError;
pub use sync::{
    plan_sync, run_sync, Month, MonthError, MonthFilter, SyncError, SyncFailure, SyncPlan,
    SyncReport,
};
pub use updates::{parse_updates, SkippedEntry, UpdateEntry, UpdateList};
