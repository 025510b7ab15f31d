//! OData query options for the collection routes: `$filter` parser/evaluator, `$orderby`, `$select`, `$top`/`$skip` paging, `$count`.
//!
//! Rows stay typed ([`ApiEntity`]): the filter is compiled against the entity's
//! `FILTERABLE` table (property names case-insensitive, literals type-checked), evaluated
//! with [`ApiEntity::field`], sorted on precomputed keys, and only the returned page is
//! serialised. String comparisons (`eq`, `ne`, ordering, `startswith`...) are
//! case-insensitive, as Defender's are in practice.

use crate::api_model::{ApiEntity, FieldKind, FieldValue};
use crate::error::ApiError;
use chrono::{DateTime, Utc};
use std::cmp::Ordering;
use std::fmt::Write as _;

/// Which query options a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryMode {
    /// A `$filter`-able collection: all options.
    Full,
    /// Any other route: options are ignored (or rejected in strict mode).
    None,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
}

/// A string function of `$filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrFunc {
    /// `startswith(prop,'x')`
    StartsWith,
    /// `endswith(prop,'x')`
    EndsWith,
    /// `contains(prop,'x')`
    Contains,
}

/// A literal of `$filter`, already converted to the property's kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `null`
    Null,
    /// A string, lower-cased for case-insensitive comparison.
    Str(String),
    /// A number.
    Num(f64),
    /// `true` / `false`.
    Bool(bool),
    /// A timestamp.
    Time(DateTime<Utc>),
}

/// A compiled `$filter` expression; properties are indexes into the entity's `FILTERABLE`.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `a and b`
    And(Box<Expr>, Box<Expr>),
    /// `a or b`
    Or(Box<Expr>, Box<Expr>),
    /// `not a`
    Not(Box<Expr>),
    /// `prop op literal`
    Cmp(usize, CmpOp, Literal),
    /// `func(prop, 'text')` (text lower-cased)
    Func(StrFunc, usize, String),
}

/// Parsed query options of one request.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// `$filter`.
    pub filter: Option<Expr>,
    /// `$top`.
    pub top: Option<usize>,
    /// `$skip`.
    pub skip: usize,
    /// `$select`: indexes into `KEYS`, in wire order.
    pub select: Option<Vec<usize>>,
    /// `$orderby`: (FILTERABLE index, descending).
    pub orderby: Vec<(usize, bool)>,
    /// `$count=true`.
    pub count: bool,
    /// The caller's `$filter`/`$orderby`/`$select`/`$count`, decoded, kept for nextLink.
    pub kept: Vec<(String, String)>,
}

fn odata_err(msg: impl Into<String>) -> ApiError {
    ApiError::OData(msg.into())
}

/// Parses a raw query string for entity `T`.
///
/// Unknown parameters are ignored unless `strict`; in [`QueryMode::None`] every option is
/// ignored unless `strict`.
pub fn parse_query<T: ApiEntity>(
    raw: Option<&str>,
    mode: QueryMode,
    strict: bool,
) -> Result<QueryOptions, ApiError> {
    let mut opts = QueryOptions::default();
    let Some(raw) = raw else { return Ok(opts) };
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        let lower = key.to_ascii_lowercase();
        let known = matches!(
            lower.as_str(),
            "$filter" | "$top" | "$skip" | "$select" | "$orderby" | "$count"
        );
        if mode == QueryMode::None || !known {
            if strict {
                return Err(odata_err(format!(
                    "The query parameter '{key}' is not supported on this route."
                )));
            }
            continue;
        }
        match lower.as_str() {
            "$filter" => {
                opts.filter = Some(parse_filter::<T>(&value)?);
                opts.kept.push(("$filter".into(), value.into_owned()));
            }
            "$top" => opts.top = Some(parse_count_value("$top", &value)?),
            "$skip" => opts.skip = parse_count_value("$skip", &value)?,
            "$select" => {
                opts.select = Some(parse_select::<T>(&value)?);
                opts.kept.push(("$select".into(), value.into_owned()));
            }
            "$orderby" => {
                opts.orderby = parse_orderby::<T>(&value)?;
                opts.kept.push(("$orderby".into(), value.into_owned()));
            }
            "$count" => {
                opts.count = match value.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(odata_err(format!(
                            "Invalid value '{value}' for $count: expected true or false."
                        )))
                    }
                };
                opts.kept.push(("$count".into(), value.into_owned()));
            }
            _ => {}
        }
    }
    Ok(opts)
}

fn parse_count_value(name: &str, v: &str) -> Result<usize, ApiError> {
    v.trim().parse::<usize>().map_err(|_| {
        odata_err(format!(
            "Invalid value '{v}' for {name}: expected a non-negative integer."
        ))
    })
}

fn filterable_index<T: ApiEntity>(name: &str, option: &str) -> Result<usize, ApiError> {
    T::FILTERABLE
        .iter()
        .position(|(p, _)| p.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            let list: Vec<&str> = T::FILTERABLE.iter().map(|(p, _)| *p).collect();
            odata_err(format!(
                "Invalid {option}: property '{name}' is not supported on this route. Supported properties: {}.",
                list.join(", ")
            ))
        })
}

fn parse_select<T: ApiEntity>(v: &str) -> Result<Vec<usize>, ApiError> {
    let mut idx = Vec::new();
    for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let i = T::KEYS
            .iter()
            .position(|k| k.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                odata_err(format!(
                    "Invalid $select: property '{name}' does not exist on this entity."
                ))
            })?;
        if !idx.contains(&i) {
            idx.push(i);
        }
    }
    if idx.is_empty() {
        return Err(odata_err("Invalid $select: no property named."));
    }
    idx.sort_unstable();
    Ok(idx)
}

fn parse_orderby<T: ApiEntity>(v: &str) -> Result<Vec<(usize, bool)>, ApiError> {
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let mut parts = item.split_whitespace();
        let name = parts.next().unwrap_or_default();
        let desc = match parts.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(odata_err(format!(
                    "Invalid $orderby: expected 'asc' or 'desc' after '{name}', found '{other}'."
                )))
            }
        };
        if let Some(extra) = parts.next() {
            return Err(odata_err(format!(
                "Invalid $orderby: unexpected '{extra}' in '{item}'."
            )));
        }
        out.push((filterable_index::<T>(name, "$orderby")?, desc));
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Comma,
    Str(String),
    Word(String),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, ApiError> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '\'' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(odata_err(format!(
                                "Invalid $filter: unterminated string literal in '{s}'."
                            )))
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            text.push(*c);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(text));
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], '(' | ')' | ',' | '\'')
                {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

struct Parser<'a, T> {
    toks: Vec<Tok>,
    pos: usize,
    text: &'a str,
    _t: std::marker::PhantomData<T>,
}

fn is_kw(t: Option<&Tok>, kw: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
}

impl<T: ApiEntity> Parser<'_, T> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn err(&self, what: &str) -> ApiError {
        odata_err(format!("Invalid $filter '{}': {what}.", self.text))
    }
    fn expect(&mut self, t: Tok, what: &str) -> Result<(), ApiError> {
        if self.next() == Some(t) {
            Ok(())
        } else {
            Err(self.err(&format!("expected {what}")))
        }
    }
    fn or(&mut self) -> Result<Expr, ApiError> {
        let mut e = self.and()?;
        while is_kw(self.peek(), "or") {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, ApiError> {
        let mut e = self.unary()?;
        while is_kw(self.peek(), "and") {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }
    fn unary(&mut self) -> Result<Expr, ApiError> {
        if is_kw(self.peek(), "not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }
    fn primary(&mut self) -> Result<Expr, ApiError> {
        match self.next() {
            Some(Tok::LParen) => {
                let e = self.or()?;
                self.expect(Tok::RParen, "')'")?;
                Ok(e)
            }
            Some(Tok::Word(w)) if self.peek() == Some(&Tok::LParen) => {
                let func = match w.to_ascii_lowercase().as_str() {
                    "startswith" => StrFunc::StartsWith,
                    "endswith" => StrFunc::EndsWith,
                    "contains" => StrFunc::Contains,
                    _ => return Err(self.err(&format!("unsupported function '{w}'"))),
                };
                self.pos += 1;
                let Some(Tok::Word(prop)) = self.next() else {
                    return Err(self.err(&format!("expected a property name in {w}(...)")));
                };
                let idx = filterable_index::<T>(&prop, "$filter")?;
                if T::FILTERABLE[idx].1 != FieldKind::String {
                    return Err(self.err(&format!("{w} needs a string property, '{prop}' is not")));
                }
                self.expect(Tok::Comma, "','")?;
                let Some(Tok::Str(text)) = self.next() else {
                    return Err(self.err(&format!("expected a quoted string in {w}(...)")));
                };
                self.expect(Tok::RParen, "')'")?;
                Ok(Expr::Func(func, idx, text.to_lowercase()))
            }
            Some(Tok::Word(prop)) => {
                let idx = filterable_index::<T>(&prop, "$filter")?;
                let op = match self.next() {
                    Some(Tok::Word(op)) => match op.to_ascii_lowercase().as_str() {
                        "eq" => CmpOp::Eq,
                        "ne" => CmpOp::Ne,
                        "gt" => CmpOp::Gt,
                        "ge" => CmpOp::Ge,
                        "lt" => CmpOp::Lt,
                        "le" => CmpOp::Le,
                        _ => return Err(self.err(&format!("unknown operator '{op}'"))),
                    },
                    _ => return Err(self.err(&format!("expected an operator after '{prop}'"))),
                };
                let lit = self.literal(idx, &prop)?;
                if T::FILTERABLE[idx].1 == FieldKind::StringList
                    && !matches!(op, CmpOp::Eq | CmpOp::Ne)
                {
                    return Err(
                        self.err(&format!("'{prop}' is a collection: only eq and ne apply"))
                    );
                }
                Ok(Expr::Cmp(idx, op, lit))
            }
            Some(t) => Err(self.err(&format!("unexpected {t:?}"))),
            None => Err(self.err("unexpected end of expression")),
        }
    }
    fn literal(&mut self, idx: usize, prop: &str) -> Result<Literal, ApiError> {
        let kind = T::FILTERABLE[idx].1;
        let tok = self.next();
        let mismatch = |this: &Self, found: &str| {
            this.err(&format!(
                "property '{prop}' is {kind:?} and cannot be compared with {found}"
            ))
        };
        match tok {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Ok(Literal::Null),
            Some(Tok::Str(s)) => match kind {
                FieldKind::String | FieldKind::StringList => Ok(Literal::Str(s.to_lowercase())),
                FieldKind::DateTime => parse_time(&s)
                    .map(Literal::Time)
                    .ok_or_else(|| mismatch(self, &format!("'{s}'"))),
                _ => Err(mismatch(self, &format!("'{s}'"))),
            },
            Some(Tok::Word(w)) => {
                let lower = w.to_ascii_lowercase();
                match kind {
                    FieldKind::Bool if lower == "true" || lower == "false" => {
                        Ok(Literal::Bool(lower == "true"))
                    }
                    FieldKind::Number => w
                        .parse::<f64>()
                        .map(Literal::Num)
                        .map_err(|_| mismatch(self, &w)),
                    FieldKind::DateTime => parse_time(&w)
                        .map(Literal::Time)
                        .ok_or_else(|| mismatch(self, &w)),
                    _ => Err(mismatch(self, &w)),
                }
            }
            _ => Err(self.err(&format!("expected a value after the operator on '{prop}'"))),
        }
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Parses and type-checks a `$filter` expression for entity `T`.
pub fn parse_filter<T: ApiEntity>(text: &str) -> Result<Expr, ApiError> {
    let toks = tokenize(text)?;
    let mut p = Parser::<T> {
        toks,
        pos: 0,
        text,
        _t: std::marker::PhantomData,
    };
    let e = p.or()?;
    if let Some(t) = p.peek() {
        let t = t.clone();
        return Err(p.err(&format!("unexpected {t:?} after a complete expression")));
    }
    Ok(e)
}

fn ci_cmp(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

fn cmp_values(a: &FieldValue<'_>, b: &FieldValue<'_>) -> Ordering {
    use FieldValue::*;
    match (a, b) {
        (Null, Null) => Ordering::Equal,
        (Null, _) => Ordering::Less,
        (_, Null) => Ordering::Greater,
        (Str(x), Str(y)) => ci_cmp(x, y),
        (Num(x), Num(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Bool(x), Bool(y)) => x.cmp(y),
        (Time(x), Time(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

impl Expr {
    /// Evaluates the expression on one row.
    pub fn matches<T: ApiEntity>(&self, row: &T) -> bool {
        match self {
            Expr::And(a, b) => a.matches(row) && b.matches(row),
            Expr::Or(a, b) => a.matches(row) || b.matches(row),
            Expr::Not(a) => !a.matches(row),
            Expr::Func(f, idx, text) => match row.field(*idx) {
                FieldValue::Str(s) => {
                    let s = s.to_lowercase();
                    match f {
                        StrFunc::StartsWith => s.starts_with(text.as_str()),
                        StrFunc::EndsWith => s.ends_with(text.as_str()),
                        StrFunc::Contains => s.contains(text.as_str()),
                    }
                }
                _ => false,
            },
            Expr::Cmp(idx, op, lit) => {
                let v = row.field(*idx);
                if let FieldValue::List(items) = v {
                    let has = match lit {
                        Literal::Str(s) => items.iter().any(|i| i.eq_ignore_ascii_case(s)),
                        _ => false,
                    };
                    return if *op == CmpOp::Ne { !has } else { has };
                }
                let ord = match (&v, lit) {
                    (FieldValue::Null, Literal::Null) => Some(Ordering::Equal),
                    (FieldValue::Null, _) | (_, Literal::Null) => None,
                    (FieldValue::Str(a), Literal::Str(b)) => Some(ci_cmp(a, b)),
                    (FieldValue::Num(a), Literal::Num(b)) => a.partial_cmp(b),
                    (FieldValue::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
                    (FieldValue::Time(a), Literal::Time(b)) => Some(a.cmp(b)),
                    _ => None,
                };
                match (op, ord) {
                    (CmpOp::Eq, o) => o == Some(Ordering::Equal),
                    (CmpOp::Ne, o) => o != Some(Ordering::Equal),
                    (_, None) => false,
                    (CmpOp::Gt, Some(o)) => o == Ordering::Greater,
                    (CmpOp::Ge, Some(o)) => o != Ordering::Less,
                    (CmpOp::Lt, Some(o)) => o == Ordering::Less,
                    (CmpOp::Le, Some(o)) => o != Ordering::Greater,
                }
            }
        }
    }

    /// The string a top-level `prop eq 'x'` conjunct pins `FILTERABLE[idx]` to, if any
    /// (lower-cased). Used as a pushdown hint to the data layer.
    pub fn eq_hint(&self, idx: usize) -> Option<&str> {
        match self {
            Expr::Cmp(i, CmpOp::Eq, Literal::Str(s)) if *i == idx => Some(s),
            Expr::And(a, b) => a.eq_hint(idx).or_else(|| b.eq_hint(idx)),
            _ => None,
        }
    }
}

/// One page of a filtered, ordered collection.
#[derive(Debug)]
pub struct Page<'a, T> {
    /// The rows of this page.
    pub rows: Vec<&'a T>,
    /// Rows matching the filter (for `$count`).
    pub total: usize,
    /// `$skip` of the next page when another page exists (and no `$top` was given).
    pub next_skip: Option<usize>,
}

/// Filters, orders (by id when no `$orderby`) and pages `rows`.
pub fn apply<'a, T: ApiEntity>(rows: &'a [T], opts: &QueryOptions, cap: usize) -> Page<'a, T> {
    let filtered: Vec<&T> = match &opts.filter {
        Some(f) => rows.iter().filter(|r| f.matches(*r)).collect(),
        None => rows.iter().collect(),
    };
    let id_idx = T::FILTERABLE
        .iter()
        .position(|(p, _)| *p == "id")
        .unwrap_or(0);
    let mut order = opts.orderby.clone();
    if !order.iter().any(|(i, _)| *i == id_idx) {
        order.push((id_idx, false)); // tie-break: pages neither overlap nor skip
    }
    let mut keyed: Vec<(Vec<FieldValue<'a>>, &'a T)> = filtered
        .into_iter()
        .map(|r| (order.iter().map(|(i, _)| r.field(*i)).collect(), r))
        .collect();
    keyed.sort_by(|(ka, _), (kb, _)| {
        for (n, (_, desc)) in order.iter().enumerate() {
            let o = cmp_values(&ka[n], &kb[n]);
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    let total = keyed.len();
    let (take, next_skip) = match opts.top {
        Some(t) => (t.min(cap), None),
        None => (cap, opts.skip.checked_add(cap).filter(|next| *next < total)),
    };
    let rows = keyed
        .into_iter()
        .skip(opts.skip)
        .take(take)
        .map(|(_, r)| r)
        .collect();
    Page {
        rows,
        total,
        next_skip,
    }
}

/// Percent-encodes a query value, keeping OData-friendly characters readable.
pub fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~'(),:$".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The `@odata.nextLink` for the page after this one.
pub fn next_link(base: &str, path: &str, opts: &QueryOptions, next_skip: usize) -> String {
    let mut s = format!("{}{path}?", base.trim_end_matches('/'));
    for (k, v) in &opts.kept {
        let _ = write!(s, "{k}={}&", encode_query_value(v));
    }
    let _ = write!(s, "$skip={next_skip}");
    s
}

/// Writes one row, projected to `select` (indexes into `KEYS`) when given.
pub fn write_row<T: ApiEntity>(
    out: &mut Vec<u8>,
    row: &T,
    select: Option<&[usize]>,
) -> Result<(), ApiError> {
    let ser = |e: serde_json::Error| ApiError::Internal(format!("serialising a row: {e}"));
    match select {
        None => serde_json::to_writer(&mut *out, row).map_err(ser),
        Some(sel) => {
            let v = serde_json::to_value(row).map_err(ser)?;
            out.push(b'{');
            for (n, i) in sel.iter().enumerate() {
                let key = T::KEYS[*i];
                if n > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key).map_err(ser)?;
                out.push(b':');
                serde_json::to_writer(&mut *out, v.get(key).unwrap_or(&serde_json::Value::Null))
                    .map_err(ser)?;
            }
            out.push(b'}');
            Ok(())
        }
    }
}

/// Renders a collection envelope: context, optional count, value, optional nextLink.
pub fn render_collection<T: ApiEntity>(
    context: &str,
    rows: &[&T],
    select: Option<&[usize]>,
    count: Option<usize>,
    next_link: Option<&str>,
) -> Result<Vec<u8>, ApiError> {
    let ser = |e: serde_json::Error| ApiError::Internal(format!("serialising: {e}"));
    let mut out = Vec::with_capacity(256 + rows.len() * 256);
    out.extend_from_slice(b"{\"@odata.context\":");
    serde_json::to_writer(&mut out, context).map_err(ser)?;
    if let Some(c) = count {
        let _ = std::io::Write::write_fmt(&mut out, format_args!(",\"@odata.count\":{c}"));
    }
    out.extend_from_slice(b",\"value\":[");
    for (n, r) in rows.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_row(&mut out, *r, select)?;
    }
    out.push(b']');
    if let Some(link) = next_link {
        out.extend_from_slice(b",\"@odata.nextLink\":");
        serde_json::to_writer(&mut out, link).map_err(ser)?;
    }
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_model::{Machine, Software};

    fn m(n: u8, name: &str) -> Machine {
        let mut b = [0u8; 20];
        b[19] = n;
        let mut m = Machine::new(kbgap_core::MachineId::from_bytes(b), Some(name.into()));
        m.rbac_group_id = Some(i64::from(n));
        m.machine_tags = vec![format!("tag{}", n % 2)];
        m
    }

    #[test]
    fn filter_grammar_and_evaluation() {
        let rows = [m(1, "alpha"), m(2, "beta"), m(3, "ALPHA-2")];
        let f = parse_filter::<Machine>("startswith(computerDnsName,'alpha') and rbacGroupId gt 1")
            .unwrap();
        let hits: Vec<_> = rows.iter().filter(|r| f.matches(*r)).collect();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].computer_dns_name.as_deref(), Some("ALPHA-2"));
        let f = parse_filter::<Machine>("not (COMPUTERDNSNAME eq 'Beta') or machineTags eq 'tag0'")
            .unwrap();
        assert_eq!(rows.iter().filter(|r| f.matches(*r)).count(), 3);
        let f = parse_filter::<Machine>("lastSeen eq null").unwrap();
        assert_eq!(rows.iter().filter(|r| f.matches(*r)).count(), 3);
        let f = parse_filter::<Machine>("lastSeen gt 2023-01-01T00:00:00Z").unwrap();
        assert_eq!(rows.iter().filter(|r| f.matches(*r)).count(), 0);
    }

    #[test]
    fn filter_errors_name_the_problem() {
        let e = parse_filter::<Machine>("osBuild eq 19044").unwrap_err();
        assert!(e.to_string().contains("'osBuild'"), "{e}");
        let e = parse_filter::<Machine>("rbacGroupId eq 'x'").unwrap_err();
        assert!(e.to_string().contains("rbacGroupId"), "{e}");
        assert!(parse_filter::<Machine>("id eq 'x").is_err());
        assert!(parse_filter::<Machine>("id eq 'x' extra").is_err());
        assert!(parse_filter::<Machine>("id like 'x'").is_err());
        assert!(parse_filter::<Software>("weaknesses gt 1").is_err());
    }

    #[test]
    fn paging_and_order() {
        let rows: Vec<Machine> = (0..10).rev().map(|n| m(n, &format!("n{n}"))).collect();
        let opts = QueryOptions::default();
        let p = apply(&rows, &opts, 4);
        assert_eq!(p.rows.len(), 4);
        assert_eq!(p.next_skip, Some(4));
        assert_eq!(p.rows[0].rbac_group_id, Some(0));
        let opts = QueryOptions {
            skip: 8,
            ..Default::default()
        };
        assert_eq!(apply(&rows, &opts, 4).next_skip, None);
        let opts = QueryOptions {
            orderby: parse_orderby::<Machine>("rbacGroupId desc").unwrap(),
            top: Some(2),
            ..Default::default()
        };
        let p = apply(&rows, &opts, 4);
        assert_eq!(p.rows[0].rbac_group_id, Some(9));
        assert_eq!(p.next_skip, None);
    }

    #[test]
    fn next_link_keeps_caller_options() {
        let opts = parse_query::<Machine>(
            Some("$filter=healthStatus%20eq%20'Active'&$top=5&foo=bar&$select=id"),
            QueryMode::Full,
            false,
        )
        .unwrap();
        assert_eq!(
            next_link("https://h/", "/api/machines", &opts, 10),
            "https://h/api/machines?$filter=healthStatus%20eq%20'Active'&$select=id&$skip=10"
        );
        assert!(parse_query::<Machine>(Some("foo=bar"), QueryMode::Full, true).is_err());
    }
}
