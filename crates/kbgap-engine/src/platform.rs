//! The cumulative-update model of one platform: its KBs, their series, and which KB covers which.
//!
//! A platform is an OS ProductID plus the compound products assessed on it. Coverage ("A covers
//! B": installing A leaves nothing of B to install) comes from three sources, closed transitively:
//! Supercedence edges from the platform's rows, series order (a cumulative KB covers every earlier
//! KB of its series), and Monthly Rollups covering the month's OS fixes. See detection.md §5.

use chrono::{DateTime, Datelike, Utc};
use kbgap_core::{Build, CveId, KbId, ProductId, Severity};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::index::{Component, EngineCatalog, PlatformKey};

/// Which cumulative series a KB belongs to on a platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Series {
    /// Windows 10/11 and Server 2016+ latest cumulative updates (and their OOB releases).
    Lcu,
    /// Pre-Windows 10 Monthly Rollups.
    MonthlyRollup,
    /// Pre-Windows 10 Security Only updates: never cumulative.
    SecurityOnly,
    /// Internet Explorer cumulative updates (pre-Windows 10).
    IeCumulative,
    /// Adobe Flash Player updates: cumulative.
    Flash,
    /// Hotpatch releases beside the LCU.
    Hotpatch,
    /// Standalone updates: cover only what they name.
    Standalone,
}

impl Series {
    fn cumulative(self) -> bool {
        matches!(
            self,
            Self::Lcu | Self::MonthlyRollup | Self::IeCumulative | Self::Flash
        )
    }
    /// Preference when several KBs would fix the same thing in the same month.
    fn rank(self) -> u8 {
        match self {
            Self::Lcu | Self::MonthlyRollup => 5,
            Self::IeCumulative | Self::Flash => 3,
            Self::Standalone => 2,
            Self::SecurityOnly => 1,
            Self::Hotpatch => 0,
        }
    }
    /// Lower-case name for evidence text.
    pub fn label(self) -> &'static str {
        match self {
            Self::Lcu => "cumulative update",
            Self::MonthlyRollup => "monthly rollup",
            Self::SecurityOnly => "security-only update",
            Self::IeCumulative => "IE cumulative update",
            Self::Flash => "Flash update",
            Self::Hotpatch => "hotpatch",
            Self::Standalone => "standalone update",
        }
    }
}

/// Sub-types that are not missing security updates (detection.md rule 11).
pub fn out_of_scope(sub_type: &str) -> bool {
    let s = sub_type.trim().to_ascii_lowercase();
    matches!(
        s.as_str(),
        "update"
            | "preview rollup"
            | "servicing stack update"
            | "setup du"
            | "setup dynamic update"
    ) || s.contains("preview")
        || s.contains("servicing stack")
}

/// One KB on the platform.
#[derive(Debug, Clone)]
pub struct KbNode {
    /// The KB.
    pub kb: KbId,
    /// Its series here.
    pub series: Series,
    /// Its month (primary document's initial release; falls back to its earliest row here).
    pub month: DateTime<Utc>,
    /// The sub-type of most of its rows here.
    pub sub_type: Option<Arc<str>>,
    /// Whether it may be reported (rule 11).
    pub in_scope: bool,
    /// NT 10 fixed builds of its rows here.
    pub fixed_builds: Vec<Build>,
    /// Whether it has rows on the OS product itself.
    pub os_fix: bool,
}

impl KbNode {
    fn order_key(&self) -> (i32, u32, u32) {
        (month_number(self.month), 0, self.kb.get())
    }
}

fn month_number(d: DateTime<Utc>) -> i32 {
    d.year() * 12 + d.month0() as i32
}

/// A (CVE, product) pair on the platform and the KBs that fix it (its fix group).
#[derive(Debug, Clone)]
pub struct Unit {
    /// The vulnerability.
    pub cve: CveId,
    /// The product.
    pub product: ProductId,
    /// Node indexes of the KBs that fix it directly (alternatives).
    pub members: Vec<usize>,
    /// Severity for the product.
    pub severity: Option<Severity>,
    /// Fixed builds per member (node index, build), for the revision rule.
    pub fixed: Vec<(usize, Build)>,
}

/// The platform's KBs, units and coverage graph.
#[derive(Debug)]
pub struct PlatformModel {
    /// KB nodes.
    pub nodes: Vec<KbNode>,
    /// KB -> node index.
    pub index: HashMap<KbId, usize>,
    /// `covers[a]` = nodes that node `a` directly covers.
    pub covers: Vec<Vec<usize>>,
    /// Units.
    pub units: Vec<Unit>,
    /// `best_head[n]`: the newest reportable KB covering node n (n itself when nothing does).
    pub best_head: Vec<Option<usize>>,
}

impl PlatformModel {
    pub(crate) fn build(cat: &EngineCatalog, key: &PlatformKey) -> Self {
        let nt10 = platform_is_nt10(cat, &key.platform);
        let mut products: Vec<(ProductId, Option<Component>)> = vec![(key.platform.clone(), None)];
        for c in &key.components {
            let comp = cat
                .compounds_on(&key.platform)
                .iter()
                .find(|(id, _)| id == c)
                .map(|(_, k)| *k)
                .unwrap_or(Component::Other);
            products.push((c.clone(), Some(comp)));
        }

        // Collect rows per KB.
        struct Acc {
            sub_types: HashMap<Option<Arc<str>>, usize>,
            os_fix: bool,
            flash: bool,
            dotnet: bool,
            earliest: DateTime<Utc>,
            builds: BTreeSet<Build>,
        }
        let mut acc: HashMap<KbId, Acc> = HashMap::new();
        let mut supersedes: Vec<(KbId, KbId)> = Vec::new();
        type UnitRow = (Vec<KbId>, Option<Severity>, Vec<(KbId, Build)>);
        let mut unit_rows: HashMap<(CveId, ProductId), UnitRow> = HashMap::new();
        for (product, comp) in &products {
            for row in cat.rows(product) {
                // As-of: the document must have been out, and so must the KB itself (documents
                // are rewritten: 2018-Jan names April 2019's KB4493464).
                if let Some(d) = key.as_of {
                    let kb_month = cat.kb_meta(row.kb).map(|m| m.month);
                    if row.doc_release > d || kb_month.is_some_and(|m| m > d) {
                        continue;
                    }
                }
                let a = acc.entry(row.kb).or_insert_with(|| Acc {
                    sub_types: HashMap::new(),
                    os_fix: false,
                    flash: false,
                    dotnet: false,
                    earliest: row.doc_release,
                    builds: BTreeSet::new(),
                });
                *a.sub_types.entry(row.sub_type.clone()).or_default() += 1;
                a.os_fix |= comp.is_none();
                a.flash |= *comp == Some(Component::Flash);
                a.dotnet |= *comp == Some(Component::DotNet);
                a.earliest = a.earliest.min(row.doc_release);
                if let Some(b) = row
                    .fixed_build
                    .filter(|b| b.is_nt10() && b.revision.is_some())
                {
                    a.builds.insert(b);
                }
                for old in &row.supersedes {
                    if *old != row.kb {
                        supersedes.push((row.kb, *old));
                    }
                }
                let u = unit_rows
                    .entry((row.cve.clone(), product.clone()))
                    .or_insert_with(|| (Vec::new(), None, Vec::new()));
                if !u.0.contains(&row.kb) {
                    u.0.push(row.kb);
                }
                u.1 = u.1.max(row.severity);
                if let Some(b) = row
                    .fixed_build
                    .filter(|b| b.is_nt10() && b.revision.is_some())
                {
                    u.2.push((row.kb, b));
                }
            }
        }

        let mut nodes: Vec<KbNode> = acc
            .into_iter()
            .map(|(kb, a)| {
                let sub_type = a
                    .sub_types
                    .iter()
                    .max_by(|x, y| x.1.cmp(y.1).then_with(|| y.0.cmp(x.0)))
                    .and_then(|(s, _)| s.clone());
                let st = sub_type.as_deref().unwrap_or("").to_ascii_lowercase();
                let series = if st.contains("hotpatch") {
                    Series::Hotpatch
                } else if a.flash {
                    Series::Flash
                } else if st == "monthly rollup" {
                    Series::MonthlyRollup
                } else if st == "security only" {
                    Series::SecurityOnly
                } else if st == "ie cumulative" {
                    Series::IeCumulative
                } else if nt10 && !a.dotnet && !out_of_scope(&st) {
                    // On Windows 10/11 and Server 2016+, every OS fix (including IE/EdgeHTML and
                    // out-of-band releases) ships in the cumulative update.
                    Series::Lcu
                } else {
                    Series::Standalone
                };
                let month = cat.kb_meta(kb).map(|m| m.month).unwrap_or(a.earliest);
                KbNode {
                    kb,
                    series,
                    month,
                    in_scope: !sub_type.as_deref().is_some_and(out_of_scope),
                    sub_type,
                    fixed_builds: a.builds.into_iter().collect(),
                    os_fix: a.os_fix,
                }
            })
            .collect();
        nodes.sort_by_key(|n| n.order_key());
        let index: HashMap<KbId, usize> =
            nodes.iter().enumerate().map(|(i, n)| (n.kb, i)).collect();

        let mut covers: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); nodes.len()];
        for (new, old) in supersedes {
            if let (Some(&a), Some(&b)) = (index.get(&new), index.get(&old)) {
                if a != b {
                    covers[a].insert(b);
                }
            }
        }
        // Series chains: each cumulative KB covers the previous one of its series.
        let mut last_of: HashMap<Series, usize> = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            if n.series.cumulative() {
                if let Some(&prev) = last_of.get(&n.series) {
                    covers[i].insert(prev);
                }
                last_of.insert(n.series, i);
            }
        }
        // Cross-series coverage: an LCU covers hotpatches of its month and before; a Monthly
        // Rollup covers the OS fixes of its month and before (same-month standalone releases
        // only when they are older by KB number, i.e. not a later out-of-band release).
        for (i, n) in nodes.iter().enumerate() {
            match n.series {
                Series::Lcu => {
                    for (j, m) in nodes.iter().enumerate() {
                        if m.series == Series::Hotpatch
                            && month_number(m.month) <= month_number(n.month)
                        {
                            covers[i].insert(j);
                        }
                    }
                }
                Series::MonthlyRollup => {
                    for (j, m) in nodes.iter().enumerate() {
                        if j == i || !m.os_fix || m.series == Series::MonthlyRollup {
                            continue;
                        }
                        let (mm, nm) = (month_number(m.month), month_number(n.month));
                        if mm < nm
                            || (mm == nm && (m.series == Series::SecurityOnly || m.kb < n.kb))
                        {
                            covers[i].insert(j);
                        }
                    }
                }
                _ => {}
            }
        }
        let covers: Vec<Vec<usize>> = covers
            .into_iter()
            .map(|s| s.into_iter().collect())
            .collect();

        let mut units: Vec<Unit> = unit_rows
            .into_iter()
            .map(|((cve, product), (kbs, severity, fixed))| Unit {
                cve,
                product,
                members: kbs.iter().filter_map(|k| index.get(k).copied()).collect(),
                severity,
                fixed: fixed
                    .into_iter()
                    .filter_map(|(k, b)| index.get(&k).map(|&i| (i, b)))
                    .collect(),
            })
            .collect();
        units.sort_by(|a, b| (&a.cve, &a.product).cmp(&(&b.cve, &b.product)));

        let best_head = compute_best_heads(&nodes, &covers);
        Self {
            nodes,
            index,
            covers,
            units,
            best_head,
        }
    }

    /// Every node reachable from `start` through coverage (the nodes it covers), with the start
    /// node that reached each first.
    pub fn covered_from(&self, start: &[usize]) -> HashMap<usize, usize> {
        let mut seen: HashMap<usize, usize> = HashMap::new();
        let mut stack: Vec<(usize, usize)> = start.iter().map(|&s| (s, s)).collect();
        while let Some((n, origin)) = stack.pop() {
            if seen.contains_key(&n) {
                continue;
            }
            seen.insert(n, origin);
            for &c in &self.covers[n] {
                if !seen.contains_key(&c) {
                    stack.push((c, origin));
                }
            }
        }
        seen
    }

    /// Preference key of a node as a reported KB: newest month, then cumulative over partial,
    /// then highest KB number.
    pub fn head_key(&self, n: usize) -> (i32, u8, u32) {
        let node = &self.nodes[n];
        (month_number(node.month), node.series.rank(), node.kb.get())
    }
}

fn platform_is_nt10(cat: &EngineCatalog, platform: &ProductId) -> bool {
    cat.catalog()
        .product(platform)
        .and_then(|p| crate::resolve::windows_name(&p.name))
        .is_some_and(|w| w.is_nt10())
}

/// For every node, the best reportable node among those that cover it (itself included).
/// Coverage edges point from newer to older, so parents are found by reversing them.
fn compute_best_heads(nodes: &[KbNode], covers: &[Vec<usize>]) -> Vec<Option<usize>> {
    let n = nodes.len();
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (a, cs) in covers.iter().enumerate() {
        for &b in cs {
            parents[b].push(a);
        }
    }
    let key = |i: usize| {
        let node = &nodes[i];
        (month_number(node.month), node.series.rank(), node.kb.get())
    };
    let mut best: Vec<Option<usize>> = vec![None; n];
    let mut state = vec![0u8; n]; // 0 new, 1 visiting, 2 done
    for start in 0..n {
        if state[start] == 2 {
            continue;
        }
        // Iterative DFS over parents, post-order.
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if *next < parents[v].len() {
                let p = parents[v][*next];
                *next += 1;
                if state[p] == 0 {
                    state[p] = 1;
                    stack.push((p, 0));
                }
                continue;
            }
            let mut b = if nodes[v].in_scope { Some(v) } else { None };
            for &p in &parents[v] {
                // A parent still being visited is part of a cycle (junk supersedence): skip it.
                if state[p] == 2 {
                    if let Some(pb) = best[p] {
                        if b.is_none_or(|cur| key(pb) > key(cur)) {
                            b = Some(pb);
                        }
                    }
                }
            }
            best[v] = b;
            state[v] = 2;
            stack.pop();
        }
    }
    best
}
