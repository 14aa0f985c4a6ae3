//! A small YAML tree where every node knows its position, built from parser events.
//!
//! serde's derive stops at the first problem and forgets positions; walking our own tree lets
//! the checker report every problem with a line and column, and spot duplicate keys, which
//! most YAML loaders silently resolve to the last value.

use serde_saphyr::granit_parser::{Event, Marker, Parser, ScalarStyle, Span};

use crate::source::Source;

/// Where a node starts, and how many characters to underline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
    /// Characters to underline, at least 1.
    pub width: usize,
}

impl Pos {
    fn from_span(span: &Span) -> Pos {
        let start = span.start;
        let width = if span.end.line() == start.line() {
            span.end.col().saturating_sub(start.col()).max(1)
        } else {
            1
        };
        Pos {
            line: start.line().max(1),
            column: start.col() + 1,
            width,
        }
    }

    fn from_marker(marker: &Marker) -> Pos {
        Pos {
            line: marker.line().max(1),
            column: marker.col() + 1,
            width: 1,
        }
    }
}

/// A YAML node with its position.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    pub pos: Pos,
}

/// The three kinds of YAML node.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// A scalar; `plain` is false for quoted and block scalars, which are always strings.
    Scalar {
        value: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// True for `null`, `~` and an empty plain scalar, as in the YAML 1.2 core schema.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { value, plain: true }
            if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A short noun for messages ("a list", "a mapping", ...).
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
            Kind::Scalar { .. } if self.is_null() => "null",
            Kind::Scalar { .. } => "a string",
        }
    }
}

/// A problem found while reading the YAML itself.
#[derive(Debug, Clone)]
pub(crate) struct SyntaxProblem {
    pub pos: Pos,
    pub message: String,
    pub help: Option<String>,
}

/// Collections waiting for their end event.
enum Frame {
    Seq(Pos, Vec<Node>),
    Map(Pos, Vec<(Node, Node)>, Option<Node>),
}

/// Parses the text into at most one document tree.
///
/// Returns the root (`None` for an empty document) and every problem found. A syntax error
/// stops parsing, since nothing after it can be trusted; other problems (aliases, extra
/// documents) are reported and parsing goes on.
pub(crate) fn parse(source: &Source<'_>) -> (Option<Node>, Vec<SyntaxProblem>) {
    let mut problems = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    for next in Parser::new_from_str(source.text()) {
        let (event, span) = match next {
            Ok(pair) => pair,
            Err(err) => {
                problems.push(SyntaxProblem {
                    pos: Pos::from_marker(err.marker()),
                    message: format!("invalid YAML: {}", err.info()),
                    help: Some("check the indentation and the quoting near this point".to_owned()),
                });
                return (None, problems);
            }
        };
        let node = match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents == 2 {
                    problems.push(SyntaxProblem {
                        pos: Pos::from_span(&span),
                        message: "a spec holds one YAML document, this is a second one".to_owned(),
                        help: Some("put each spec in its own file".to_owned()),
                    });
                }
                continue;
            }
            Event::Scalar(value, style, ..) => {
                // The parser reports a missing value (`key:` and nothing) as `~` with an empty
                // span; it becomes "" so the checker can tell it from a written null.
                let missing = span.start.index() == span.end.index() && value == "~";
                Node {
                    kind: Kind::Scalar {
                        value: if missing {
                            String::new()
                        } else {
                            value.into_owned()
                        },
                        plain: style == ScalarStyle::Plain,
                    },
                    pos: Pos::from_span(&span),
                }
            }
            Event::Alias(_) | Event::UnresolvedAlias(_) => {
                problems.push(SyntaxProblem {
                    pos: Pos::from_span(&span),
                    message: "YAML aliases (`*name`) are not supported in a spec".to_owned(),
                    help: Some("write the value out in full".to_owned()),
                });
                // The alias's key (or list item) is dropped, so that checking goes on without
                // a second, confusing message about the same value.
                match stack.last_mut() {
                    Some(Frame::Map(_, _, pending)) if pending.is_some() => {
                        *pending = None;
                        continue;
                    }
                    Some(Frame::Seq(..)) | None => continue,
                    // An alias used as a key stands in as an empty key.
                    Some(Frame::Map(..)) => Node {
                        kind: Kind::Scalar {
                            value: String::new(),
                            plain: false,
                        },
                        pos: Pos::from_span(&span),
                    },
                }
            }
            Event::SequenceStart(..) => {
                stack.push(Frame::Seq(Pos::from_span(&span), Vec::new()));
                continue;
            }
            Event::MappingStart(..) => {
                stack.push(Frame::Map(Pos::from_span(&span), Vec::new(), None));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq(pos, items)) => Node {
                    kind: Kind::Seq(items),
                    pos,
                },
                Some(Frame::Map(pos, pairs, _)) => Node {
                    kind: Kind::Map(pairs),
                    pos,
                },
                // The parser balances its events; an unbalanced end is ignored rather than
                // trusted.
                None => continue,
            },
            _ => continue,
        };
        match stack.last_mut() {
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, pairs, pending)) => match pending.take() {
                Some(key) => pairs.push((key, node)),
                None => *pending = Some(node),
            },
            None if documents <= 1 => root = Some(node),
            None => {}
        }
    }
    (root, problems)
}
