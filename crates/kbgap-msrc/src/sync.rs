//! Sync planning (pure: which remote documents are new or re-published) and the report a sync run fills.

use crate::client::MsrcClient;
use crate::error::MsrcError;
use crate::updates::UpdateEntry;
use chrono::{DateTime, Datelike, Utc};
use kbgap_catalog::{CvrfError, DocumentHead};
use kbgap_core::DocumentId;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A calendar month, as in `--from 2016-Apr`. Orders chronologically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

/// The `--from` filter of `kbgap catalog sync`: documents of this month and later.
pub type MonthFilter = Month;

impl Month {
    /// `month` is 1-12; `None` otherwise.
    pub fn new(year: i32, month: u32) -> Option<Self> {
        (1..=12).contains(&month).then_some(Self { year, month })
    }
    /// The year.
    pub fn year(self) -> i32 {
        self.year
    }
    /// The month, 1-12.
    pub fn month(self) -> u32 {
        self.month
    }
    /// The month of a UTC instant.
    pub fn of_date(d: DateTime<Utc>) -> Self {
        Self {
            year: d.year(),
            month: d.month(),
        }
    }
    /// The month a document belongs to: parsed from a `YYYY-Mon` id (`2020-Mar`), otherwise
    /// (`Oct-OOB`, `2017-May-B`) the month of its `InitialReleaseDate`.
    pub fn of_entry(e: &UpdateEntry) -> Self {
        e.id.as_str()
            .parse()
            .unwrap_or_else(|_| Self::of_date(e.initial_release))
    }
}

/// Text that is not a `YYYY-Mon` month.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid month {0:?}: expected YYYY-Mon such as 2016-Apr (or YYYY-MM)")]
pub struct MonthError(pub String);

impl FromStr for Month {
    type Err = MonthError;
    /// Parses `2016-Apr` (month name case-insensitive) or `2016-04`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MonthError(s.to_owned());
        let (y, m) = s.trim().split_once('-').ok_or_else(err)?;
        if y.len() != 4 || !y.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let year: i32 = y.parse().map_err(|_| err())?;
        let month = if m.len() == 2 && m.bytes().all(|b| b.is_ascii_digit()) {
            m.parse::<u32>().map_err(|_| err())?
        } else {
            MONTHS
                .iter()
                .position(|name| name.eq_ignore_ascii_case(m))
                .map(|i| i as u32 + 1)
                .ok_or_else(err)?
        };
        Self::new(year, month).ok_or_else(err)
    }
}

impl fmt::Display for Month {
    /// `2016-Apr`, the MSRC document id form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{}", self.year, MONTHS[(self.month - 1) as usize])
    }
}

/// What a sync must do, from [`plan_sync`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncPlan {
    /// Documents to download: not stored yet, or re-published since (newer `CurrentReleaseDate`).
    /// Oldest first (by `InitialReleaseDate`, then id).
    pub to_fetch: Vec<UpdateEntry>,
    /// Documents in range whose stored copy is as new as the remote one.
    pub up_to_date: usize,
    /// Documents of months before the `--from` month, ignored.
    pub skipped_before_from: usize,
}

/// Decides which remote documents to fetch.
///
/// A document is fetched when it is not stored, or its remote `CurrentReleaseDate` is later than
/// the stored one. Documents whose [`Month::of_entry`] is before `from` are skipped. If the
/// remote list names an id twice, the entry with the later `CurrentReleaseDate` wins.
pub fn plan_sync(
    remote: &[UpdateEntry],
    stored: &[DocumentHead],
    from: Option<MonthFilter>,
) -> SyncPlan {
    let stored: HashMap<&DocumentId, DateTime<Utc>> =
        stored.iter().map(|h| (&h.id, h.current_release)).collect();
    let mut newest: HashMap<&DocumentId, &UpdateEntry> = HashMap::new();
    let mut order: Vec<&DocumentId> = Vec::new();
    for e in remote {
        match newest.get(&e.id) {
            Some(prev) if prev.current_release >= e.current_release => {}
            Some(_) => {
                newest.insert(&e.id, e);
            }
            None => {
                order.push(&e.id);
                newest.insert(&e.id, e);
            }
        }
    }
    let mut plan = SyncPlan::default();
    for id in order {
        let Some(&e) = newest.get(id) else { continue };
        if from.is_some_and(|from| Month::of_entry(e) < from) {
            plan.skipped_before_from += 1;
            continue;
        }
        match stored.get(id) {
            Some(&have) if have >= e.current_release => plan.up_to_date += 1,
            _ => plan.to_fetch.push(e.clone()),
        }
    }
    plan.to_fetch
        .sort_by(|a, b| (a.initial_release, &a.id).cmp(&(b.initial_release, &b.id)));
    plan
}

/// Why one document of a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Downloading it failed.
    #[error(transparent)]
    Fetch(#[from] MsrcError),
    /// It downloaded but did not parse.
    #[error(transparent)]
    Parse(#[from] CvrfError),
    /// It parsed but could not be stored.
    #[error("storing failed: {0}")]
    Store(Box<dyn std::error::Error + Send + Sync>),
}

/// One document that failed to sync.
#[derive(Debug)]
pub struct SyncFailure {
    /// The document.
    pub id: DocumentId,
    /// What went wrong.
    pub error: SyncError,
}

/// The outcome of `kbgap catalog sync`, filled by [`run_sync`] or by the CLI itself.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Documents fetched and handed to the store successfully, in fetch order.
    pub fetched: Vec<DocumentId>,
    /// Documents already up to date.
    pub unchanged: usize,
    /// Documents before the `--from` month.
    pub skipped_before_from: usize,
    /// Entries of the updates list that were unusable (bad id or date).
    pub skipped_bad_entries: usize,
    /// Documents that failed, with their errors.
    pub failures: Vec<SyncFailure>,
    /// Planned documents never attempted because the host became unreachable.
    pub not_attempted: Vec<DocumentId>,
}

impl SyncReport {
    /// A report seeded with a plan's counts, before any fetching.
    pub fn from_plan(plan: &SyncPlan) -> Self {
        Self {
            unchanged: plan.up_to_date,
            skipped_before_from: plan.skipped_before_from,
            ..Self::default()
        }
    }
    /// True when every planned document was fetched and stored.
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty() && self.not_attempted.is_empty()
    }
}

impl fmt::Display for SyncReport {
    /// One summary line: `fetched 3, unchanged 120, skipped before --from 10, failed 1 (2020-Mar: ...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fetched {}, unchanged {}, skipped before --from {}",
            self.fetched.len(),
            self.unchanged,
            self.skipped_before_from
        )?;
        if self.skipped_bad_entries > 0 {
            write!(f, ", unusable list entries {}", self.skipped_bad_entries)?;
        }
        if !self.failures.is_empty() {
            write!(f, ", failed {}", self.failures.len())?;
            if let Some(first) = self.failures.first() {
                write!(f, " (first: {}: {})", first.id, first.error)?;
            }
        }
        if !self.not_attempted.is_empty() {
            write!(f, ", not attempted {}", self.not_attempted.len())?;
        }
        Ok(())
    }
}

/// Fetches every document of `plan` in order and hands each body to `store` (which parses and
/// saves it). A failure of one document is recorded and the next is tried; if the host is
/// unreachable the run stops and the rest are listed in [`SyncReport::not_attempted`].
pub fn run_sync<F>(client: &MsrcClient, plan: &SyncPlan, mut store: F) -> SyncReport
where
    F: FnMut(&UpdateEntry, Vec<u8>) -> Result<(), SyncError>,
{
    let mut report = SyncReport::from_plan(plan);
    for (i, entry) in plan.to_fetch.iter().enumerate() {
        let result = client
            .fetch_document(&entry.id)
            .map_err(SyncError::Fetch)
            .and_then(|body| store(entry, body));
        match result {
            Ok(()) => report.fetched.push(entry.id.clone()),
            Err(error) => {
                let stop = matches!(&error, SyncError::Fetch(e) if e.is_unreachable());
                tracing::warn!(id = %entry.id, %error, "MSRC document not synced");
                report.failures.push(SyncFailure {
                    id: entry.id.clone(),
                    error,
                });
                if stop {
                    report.not_attempted = plan.to_fetch[i + 1..]
                        .iter()
                        .map(|e| e.id.clone())
                        .collect();
                    break;
                }
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn entry(id: &str, initial: &str, current: &str) -> UpdateEntry {
        UpdateEntry {
            id: id.parse().unwrap(),
            alias: id.into(),
            title: String::new(),
            initial_release: date(initial),
            current_release: date(current),
            cvrf_url: None,
        }
    }

    fn head(id: &str, current: &str) -> DocumentHead {
        DocumentHead {
            id: id.parse().unwrap(),
            revision: "1".into(),
            current_release: date(current),
        }
    }

    fn ids(plan: &SyncPlan) -> Vec<&str> {
        plan.to_fetch.iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn months_parse_print_and_order() {
        let m: Month = "2016-Apr".parse().unwrap();
        assert_eq!((m.year(), m.month()), (2016, 4));
        assert_eq!(m.to_string(), "2016-Apr");
        assert_eq!("2016-apr".parse::<Month>().unwrap(), m);
        assert_eq!("2016-04".parse::<Month>().unwrap(), m);
        assert!("2016-May".parse::<Month>().unwrap() > m);
        assert!("2015-Dec".parse::<Month>().unwrap() < m);
        for bad in [
            "2016",
            "16-Apr",
            "2016-April",
            "2016-13",
            "2016-00",
            "Oct-OOB",
            "",
        ] {
            let e = bad.parse::<Month>().unwrap_err();
            assert!(e.to_string().contains("YYYY-Mon"), "{bad}: {e}");
        }
    }

    #[test]
    fn entry_month_uses_id_or_initial_release() {
        let mar = entry("2020-Mar", "2020-03-10T07:00:00Z", "2020-04-01T07:00:00Z");
        assert_eq!(Month::of_entry(&mar).to_string(), "2020-Mar");
        // A January-dated initial release for a `2017-Dec` id would still be December.
        let odd = entry("2017-Dec", "2018-01-02T00:00:00Z", "2018-01-02T00:00:00Z");
        assert_eq!(Month::of_entry(&odd).to_string(), "2017-Dec");
        let oob = entry("Oct-OOB", "2017-10-19T07:00:00Z", "2017-10-19T07:00:00Z");
        assert_eq!(Month::of_entry(&oob).to_string(), "2017-Oct");
        let b = entry("2017-May-B", "2017-05-17T07:00:00Z", "2017-05-18T07:00:00Z");
        assert_eq!(Month::of_entry(&b).to_string(), "2017-May");
    }

    #[test]
    fn plan_fetches_new_and_republished_only() {
        let remote = vec![
            entry("2020-Apr", "2020-04-14T07:00:00Z", "2020-08-11T07:00:00Z"),
            entry("2020-Mar", "2020-03-10T07:00:00Z", "2020-04-01T07:00:00Z"),
            entry("2020-Feb", "2020-02-11T08:00:00Z", "2020-09-22T07:00:00Z"),
            entry("2020-Jan", "2020-01-14T08:00:00Z", "2020-01-20T08:00:00Z"),
        ];
        let stored = vec![
            // Same date: up to date.
            head("2020-Mar", "2020-04-01T07:00:00Z"),
            // Re-published since: fetch.
            head("2020-Feb", "2020-03-01T07:00:00Z"),
            // Stored copy newer than the list (a mirror lagging): keep ours.
            head("2020-Jan", "2020-02-01T08:00:00Z"),
            // Stored but no longer listed: irrelevant.
            head("2016-Apr", "2016-04-12T07:00:00Z"),
        ];
        let plan = plan_sync(&remote, &stored, None);
        assert_eq!(ids(&plan), ["2020-Feb", "2020-Apr"]);
        assert_eq!(plan.up_to_date, 2);
        assert_eq!(plan.skipped_before_from, 0);

        let empty = plan_sync(&remote, &[], None);
        assert_eq!(
            ids(&empty),
            ["2020-Jan", "2020-Feb", "2020-Mar", "2020-Apr"]
        );
        assert_eq!(empty.up_to_date, 0);
    }

    #[test]
    fn plan_applies_from_filter_with_oob_ids() {
        let remote = vec![
            entry("2016-Mar", "2016-03-08T08:00:00Z", "2016-03-08T08:00:00Z"),
            entry("2016-Apr", "2016-04-12T07:00:00Z", "2016-04-12T07:00:00Z"),
            entry("Oct-OOB", "2015-10-20T07:00:00Z", "2015-10-20T07:00:00Z"),
            entry("2017-May-B", "2017-05-17T07:00:00Z", "2017-05-17T07:00:00Z"),
            entry("2017-May", "2017-05-09T07:00:00Z", "2017-05-09T07:00:00Z"),
        ];
        let from = Some("2016-Apr".parse().unwrap());
        let plan = plan_sync(&remote, &[head("2017-May", "2017-05-09T07:00:00Z")], from);
        assert_eq!(ids(&plan), ["2016-Apr", "2017-May-B"]);
        assert_eq!(plan.skipped_before_from, 2);
        assert_eq!(plan.up_to_date, 1);

        let from = Some("2017-May".parse().unwrap());
        let plan = plan_sync(&remote, &[], from);
        assert_eq!(ids(&plan), ["2017-May", "2017-May-B"]);
        assert_eq!(plan.skipped_before_from, 3);
    }

    #[test]
    fn duplicate_remote_ids_keep_the_newest() {
        let remote = vec![
            entry("2020-Mar", "2020-03-10T07:00:00Z", "2020-03-20T07:00:00Z"),
            entry("2020-Mar", "2020-03-10T07:00:00Z", "2020-04-01T07:00:00Z"),
            entry("2020-Mar", "2020-03-10T07:00:00Z", "2020-03-12T07:00:00Z"),
        ];
        let plan = plan_sync(&remote, &[head("2020-Mar", "2020-03-20T07:00:00Z")], None);
        assert_eq!(ids(&plan), ["2020-Mar"]);
        assert_eq!(
            plan.to_fetch[0].current_release,
            date("2020-04-01T07:00:00Z")
        );
        assert_eq!(plan.up_to_date, 0);
    }

    #[test]
    fn report_summarises_in_one_line() {
        let mut r = SyncReport::from_plan(&SyncPlan {
            to_fetch: vec![],
            up_to_date: 120,
            skipped_before_from: 10,
        });
        assert!(r.is_complete());
        r.fetched.push("2020-Mar".parse().unwrap());
        r.failures.push(SyncFailure {
            id: "2020-Apr".parse().unwrap(),
            error: SyncError::Fetch(MsrcError::Http {
                url: "http://h/cvrf/v3.0/cvrf/2020-Apr".into(),
                status: 404,
                snippet: String::new(),
                attempts: 1,
            }),
        });
        assert!(!r.is_complete());
        assert_eq!(
            r.to_string(),
            "fetched 1, unchanged 120, skipped before --from 10, failed 1 \
             (first: 2020-Apr: http://h/cvrf/v3.0/cvrf/2020-Apr: HTTP 404 after 1 attempt)"
        );
    }
}
