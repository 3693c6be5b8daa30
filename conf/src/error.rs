//! `ConfError` (`file:line:col: message`) and the collection of them a failed load returns.

use std::fmt;
use std::ops::Range;

/// One configuration problem, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    /// File name as given (or `<embedded default>`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong and what was expected.
    pub msg: String,
}

impl ConfError {
    /// An error at the start of `span` in `text`.
    pub fn at(file: &str, text: &str, span: Range<usize>, msg: impl Into<String>) -> ConfError {
        let (line, col) = line_col(text, span.start);
        ConfError {
            file: file.to_string(),
            line,
            col,
            msg: msg.into(),
        }
    }

    /// An error about the file as a whole (unreadable, say): reported at 1:1.
    pub fn whole_file(file: &str, msg: impl Into<String>) -> ConfError {
        ConfError {
            file: file.to_string(),
            line: 1,
            col: 1,
            msg: msg.into(),
        }
    }

    /// Converts a TOML syntax or type error.
    pub fn from_toml(file: &str, text: &str, e: &toml::de::Error) -> ConfError {
        let span = e.span().unwrap_or(0..0);
        let msg = e.message().trim().replace('\n', " ");
        ConfError::at(file, text, span, msg)
    }
}

/// 1-based line and column (in characters) of byte offset `pos`.
pub fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    let before = text.get(..pos).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.msg)
    }
}

impl std::error::Error for ConfError {}

/// Every problem found in one load, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfErrors(pub Vec<ConfError>);

impl ConfErrors {
    /// A list of one.
    pub fn one(e: ConfError) -> ConfErrors {
        ConfErrors(vec![e])
    }
}

impl fmt::Display for ConfErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 4), (1, 5));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 11), (2, 6));
        assert_eq!(line_col(t, 999), (3, 1));
    }
}
