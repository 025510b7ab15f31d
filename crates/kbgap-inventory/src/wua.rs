//! Parser for Windows Update Agent "missing updates" lists (`KBnnnn: title` lines), used as ground truth.

use crate::decode;
use crate::error::InventoryError;
use kbgap_core::KbId;

/// One update the Windows Update Agent offered as missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WuaUpdate {
    /// The KB.
    pub kb: KbId,
    /// Update title as WUA printed it.
    pub title: String,
    /// 1-based line.
    pub line: usize,
}

/// True when every non-empty line starts with `KBnnnn: `.
pub fn looks_like(text: &str) -> bool {
    let mut any = false;
    for (_, l) in decode::lines(text) {
        if l.trim().is_empty() {
            continue;
        }
        if split(l).is_none() {
            return false;
        }
        any = true;
    }
    any
}

fn split(line: &str) -> Option<(KbId, &str)> {
    let (kb, title) = line.trim().split_once(':')?;
    let kb = kb.trim();
    if !kb.starts_with("KB") {
        return None;
    }
    Some((kb.parse().ok()?, title.trim()))
}

/// Parses a WUA list. Every non-empty line must be `KBnnnn: title`; duplicates (one KB for
/// several language packs) are kept, in file order.
pub fn parse(bytes: &[u8], source_name: &str) -> Result<Vec<WuaUpdate>, InventoryError> {
    let d = crate::detect::decode_input(bytes, source_name)?;
    let mut out = Vec::new();
    for (n, l) in decode::lines(&d.text) {
        if l.trim().is_empty() {
            continue;
        }
        let Some((kb, title)) = split(l) else {
            return Err(InventoryError::new(
                source_name,
                Some(n),
                format!("expected `KBnnnnnnn: title`, found {:?}", l.trim()),
            ));
        };
        out.push(WuaUpdate {
            kb,
            title: title.to_owned(),
            line: n,
        });
    }
    Ok(out)
}
