//! The text being checked, and the construction of diagnostics that quote it.

use crate::diagnostic::{Diagnostic, Severity};
use crate::tree::Pos;

/// A spec's text together with the name used for it in messages.
pub(crate) struct Source<'a> {
    file: String,
    text: &'a str,
    /// The lines of `text` (after a byte-order mark), so that quoting one is cheap even when
    /// a large file yields many diagnostics.
    lines: Vec<&'a str>,
}

impl<'a> Source<'a> {
    pub fn new(file: String, text: &'a str) -> Self {
        let body = text.strip_prefix('\u{feff}').unwrap_or(text);
        let lines = body
            .split('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .collect();
        Source { file, text, lines }
    }

    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The 1-based line, without its line break.
    fn line(&self, line: usize) -> Option<&'a str> {
        self.lines.get(line.checked_sub(1)?).copied()
    }

    /// An error at `pos`, quoting its line.
    pub fn error(&self, pos: Pos, message: impl Into<String>, help: Option<String>) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line: pos.line,
            column: pos.column,
            width: pos.width,
            severity: Severity::Error,
            message: message.into(),
            help,
            excerpt: self.line(pos.line).map(str::to_owned),
        }
    }

    /// Errors for a known key glued to its value (`repo_id:org/name`).
    ///
    /// YAML reads that as one string, so the parser complains later and elsewhere ("mapping
    /// values are not allowed"); naming the real cause is far more useful.
    pub fn missing_space_errors(&self, keys: &[&str]) -> Vec<Diagnostic> {
        let mut errors = Vec::new();
        for (index, line) in self.lines.iter().enumerate() {
            let rest = line.trim_start_matches(' ');
            let indent = line.len() - rest.len();
            for key in keys {
                let Some(value) = rest.strip_prefix(key).and_then(|r| r.strip_prefix(':')) else {
                    continue;
                };
                if value.starts_with(|c: char| !c.is_whitespace()) {
                    let pos = Pos {
                        line: index + 1,
                        column: indent + key.len() + 2,
                        width: 1,
                    };
                    errors.push(self.error(
                        pos,
                        format!("missing space after `{key}:`"),
                        Some(format!(
                            "YAML needs a space between the colon and the value: `{key}: {value}`"
                        )),
                    ));
                }
            }
        }
        errors
    }

    /// Errors for tabs in the indentation of lines that hold content.
    ///
    /// YAML forbids tabs there, and a parser's own message about it ("found a tab character
    /// that violates indentation") tends to point somewhere else, so they are found up front.
    pub fn tab_errors(&self) -> Vec<Diagnostic> {
        let mut errors = Vec::new();
        for (index, line) in self.lines.iter().enumerate() {
            let indent: Vec<char> = line
                .chars()
                .take_while(|c| *c == ' ' || *c == '\t')
                .collect();
            let rest = &line[indent.len()..];
            let has_content = !rest.trim().is_empty() && !rest.starts_with('#');
            if let Some(at) = indent.iter().position(|c| *c == '\t')
                && has_content
            {
                let pos = Pos {
                    line: index + 1,
                    column: at + 1,
                    width: 1,
                };
                errors.push(self.error(
                    pos,
                    "tab character in indentation",
                    Some("YAML indents with spaces only; replace the tab with spaces".to_owned()),
                ));
            }
        }
        errors
    }
}
