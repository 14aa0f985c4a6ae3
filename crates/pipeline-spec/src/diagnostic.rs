//! Diagnostics: what is wrong, where, and what to do, rendered like rustc.

use std::fmt;

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// The spec cannot be used.
    Error,
    /// The spec can be used, but probably not as intended.
    Warning,
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }

    fn color(self) -> &'static str {
        match self {
            Severity::Error => "\x1b[1;31m",
            Severity::Warning => "\x1b[1;33m",
        }
    }
}

/// One problem found in a spec, with its position and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (or origin name) the problem is in, as given by the caller.
    pub file: String,
    /// 1-based line; `0` when the problem concerns the whole file (for example I/O errors).
    pub line: usize,
    /// 1-based column, counted in characters; `0` together with `line == 0`.
    pub column: usize,
    /// How many characters the caret underlines (at least 1 when there is an excerpt).
    pub width: usize,
    /// How serious the problem is.
    pub severity: Severity,
    /// What is wrong, in one line.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
    /// The source line the problem is on, without its line break.
    pub excerpt: Option<String>,
}

impl Diagnostic {
    /// An error about the whole file, without a position.
    pub fn file_error(file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.into(),
            line: 0,
            column: 0,
            width: 0,
            severity: Severity::Error,
            message: message.into(),
            help: None,
            excerpt: None,
        }
    }

    /// Adds or replaces the hint.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `file:line:column`, or just `file` when there is no position.
    pub fn location(&self) -> String {
        if self.line == 0 {
            self.file.clone()
        } else {
            format!("{}:{}:{}", self.file, self.line, self.column)
        }
    }

    /// Renders the diagnostic like rustc, with ANSI colours when `color` is true.
    ///
    /// ```text
    /// error: unknown key `hf_rpo` in component `vae`
    ///  --> spec.yaml:7:5
    ///   |
    /// 7 |     hf_rpo: org/name
    ///   |     ^^^^^^
    ///   = help: did you mean `hf_repo`?
    /// ```
    pub fn render(&self, color: bool) -> String {
        let paint = |code: &'static str, text: &str| {
            if color {
                format!("{code}{text}\x1b[0m")
            } else {
                text.to_owned()
            }
        };
        let blue = "\x1b[1;34m";
        let gutter = if self.line == 0 {
            1
        } else {
            self.line.to_string().len()
        };
        let pad = " ".repeat(gutter);
        let mut out = String::new();
        out.push_str(&paint(self.severity.color(), self.severity.label()));
        out.push_str(&paint("\x1b[1m", &format!(": {}", self.message)));
        out.push('\n');
        out.push_str(&format!(
            "{pad}{} {}\n",
            paint(blue, "-->"),
            self.location()
        ));
        if let (Some(excerpt), true) = (&self.excerpt, self.line > 0) {
            let (shown, caret_start, caret_width) =
                layout_excerpt(excerpt, self.column, self.width);
            let bar = paint(blue, "|");
            out.push_str(&format!("{pad} {bar}\n"));
            out.push_str(&format!(
                "{} {bar} {shown}\n",
                paint(blue, &self.line.to_string())
            ));
            out.push_str(&format!(
                "{pad} {bar} {}{}\n",
                " ".repeat(caret_start),
                paint(self.severity.color(), &"^".repeat(caret_width))
            ));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("{pad} {} {help}\n", paint(blue, "= help:")));
        }
        out
    }
}

/// The longest excerpt shown; longer lines are cut around the caret so that a one-line
/// megabyte file does not flood the terminal.
const MAX_EXCERPT_CHARS: usize = 120;

/// Makes an excerpt printable and finds where the caret goes.
///
/// Tabs become four spaces and control characters U+FFFD, so that the terminal shows what
/// the caret points at; long lines are shortened with `...` around the caret.
fn layout_excerpt(line: &str, column: usize, width: usize) -> (String, usize, usize) {
    let chars: Vec<char> = line.chars().collect();
    let column = column.max(1);
    let start_index = (column - 1).min(chars.len());
    let end_index = (start_index + width.max(1)).min(chars.len().max(start_index + 1));
    let (from, to) = if chars.len() <= MAX_EXCERPT_CHARS {
        (0, chars.len())
    } else {
        let from = start_index.saturating_sub(40);
        (from, (from + MAX_EXCERPT_CHARS).min(chars.len()))
    };
    let mut shown = String::new();
    let mut caret_start = 0;
    let mut caret_width = 0;
    if from > 0 {
        shown.push_str("...");
        caret_start = 3;
    }
    for (index, &c) in chars.iter().enumerate().take(to).skip(from) {
        let text: String = match c {
            '\t' => "    ".to_owned(),
            c if c.is_control() => "\u{FFFD}".to_owned(),
            c => c.to_string(),
        };
        let cells = text.chars().count();
        if index < start_index {
            caret_start += cells;
        } else if index < end_index {
            caret_width += cells;
        }
        shown.push_str(&text);
    }
    if to < chars.len() {
        shown.push_str("...");
    }
    (shown, caret_start, caret_width.max(1))
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

/// Every problem found in one or more specs, in source order per file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// An empty collection.
    pub fn new() -> Self {
        Diagnostics::default()
    }

    /// Adds one diagnostic.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    /// Moves all of `other` into `self`; useful when validating several files.
    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    /// The diagnostics, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.items.iter()
    }

    /// How many diagnostics there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True when at least one diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// How many diagnostics are errors.
    pub fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// Renders every diagnostic, separated by blank lines, with ANSI colours when `color`.
    pub fn render(&self, color: bool) -> String {
        let rendered: Vec<String> = self.items.iter().map(|d| d.render(color)).collect();
        rendered.join("\n")
    }

    /// The diagnostics as a vector.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(diagnostic: Diagnostic) -> Self {
        Diagnostics {
            items: vec![diagnostic],
        }
    }
}

impl From<Vec<Diagnostic>> for Diagnostics {
    fn from(items: Vec<Diagnostic>) -> Self {
        Diagnostics { items }
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_rustc() {
        let diagnostic = Diagnostic {
            file: "spec.yaml".to_owned(),
            line: 7,
            column: 5,
            width: 6,
            severity: Severity::Error,
            message: "unknown key `hf_rpo` in component `vae`".to_owned(),
            help: Some("did you mean `hf_repo`?".to_owned()),
            excerpt: Some("    hf_rpo: org/name".to_owned()),
        };
        assert_eq!(
            diagnostic.to_string(),
            "error: unknown key `hf_rpo` in component `vae`\n --> spec.yaml:7:5\n  |\n7 |     hf_rpo: org/name\n  |     ^^^^^^\n  = help: did you mean `hf_repo`?\n"
        );
    }

    #[test]
    fn tabs_and_long_lines_keep_the_caret_aligned() {
        assert_eq!(layout_excerpt("\tab", 2, 1), ("    ab".to_owned(), 4, 1));
        let long = format!("{}X{}", "a".repeat(200), "b".repeat(200));
        let (shown, start, width) = layout_excerpt(&long, 201, 1);
        assert_eq!(shown.chars().nth(start), Some('X'));
        assert_eq!(width, 1);
        assert!(shown.starts_with("...") && shown.ends_with("..."));
    }
}
