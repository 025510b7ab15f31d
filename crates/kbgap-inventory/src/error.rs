//! Errors and warnings raised while reading device inventories, each naming source and line.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A device input that could not be read at all.
///
/// Displays as one line, `source:line: message` (or `source: message` without a line),
/// the way compilers report errors, so a CLI can print it as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InventoryError {
    /// The name the caller gave the input (usually its file name).
    pub source_name: String,
    /// 1-based line where the problem was found, when it is tied to a line.
    pub line: Option<usize>,
    /// What was expected and what was found.
    pub message: String,
}

impl InventoryError {
    /// An error at a given line (`None` for whole-input problems).
    pub fn new(source_name: &str, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            source_name: source_name.to_owned(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.source_name, l, self.message),
            None => write!(f, "{}: {}", self.source_name, self.message),
        }
    }
}

/// Something odd but survivable in an input: the device was still built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryWarning {
    /// The input name.
    pub source_name: String,
    /// 1-based line, when tied to one.
    pub line: Option<usize>,
    /// What was odd and what kbgap did about it.
    pub message: String,
}

impl InventoryWarning {
    /// A warning at a given line.
    pub fn new(source_name: &str, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            source_name: source_name.to_owned(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for InventoryWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: warning: {}", self.source_name, l, self.message),
            None => write!(f, "{}: warning: {}", self.source_name, self.message),
        }
    }
}
