//! Allow/ignore patterns with huggingface_hub's semantics (`filter_repo_objects`).
//!
//! Patterns are `fnmatch` patterns matched case-sensitively against `/`-separated repo paths:
//! `*` matches any run of characters **including `/`** (so `*.json` matches `unet/config.json`), `?`
//! one character, `[seq]` / `[!seq]` a set. A pattern ending in `/` means everything below that folder.
//! A file is kept when it matches an allow pattern (or there are none) and no ignore pattern.
//!
//! We compile them with globset (with `*` allowed to cross `/`), after escaping the glob syntax that
//! fnmatch does not have (`{a,b}` alternation, backslash escapes), so `{` and `\` stay literal.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// A compiled allow/ignore filter.
#[derive(Debug, Clone)]
pub struct PathFilter {
    allow: Option<GlobSet>,
    ignore: GlobSet,
}

impl PathFilter {
    /// Compiles the patterns; an empty `allow` list allows everything.
    pub fn new(allow: &[String], ignore: &[String]) -> Result<PathFilter> {
        let allow = if allow.is_empty() {
            None
        } else {
            Some(compile(allow)?)
        };
        Ok(PathFilter {
            allow,
            ignore: compile(ignore)?,
        })
    }

    /// Whether `path` is selected.
    pub fn matches(&self, path: &str) -> bool {
        let allowed = self.allow.as_ref().is_none_or(|set| set.is_match(path));
        allowed && !self.ignore.is_match(path)
    }
}

fn compile(patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = GlobBuilder::new(&to_glob(pattern))
            .literal_separator(false)
            .backslash_escape(false)
            .case_insensitive(false)
            .build()
            .map_err(|source| Error::Pattern {
                pattern: pattern.clone(),
                source: Box::new(source),
            })?;
        builder.add(glob);
    }
    builder.build().map_err(|source| Error::Pattern {
        pattern: patterns.join(", "),
        source: Box::new(source),
    })
}

/// Rewrites an fnmatch pattern as an equivalent glob.
fn to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 2);
    for c in pattern.chars() {
        match c {
            '{' | '}' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    if out.ends_with('/') {
        out.push('*');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(allow: &[&str], ignore: &[&str]) -> PathFilter {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PathFilter::new(&s(allow), &s(ignore)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn star_crosses_slashes() {
        let filter = f(&["*.json"], &[]);
        assert!(filter.matches("unet/config.json"));
        assert!(filter.matches("model_index.json"));
        assert!(!filter.matches("unet/x.safetensors"));
    }

    #[test]
    fn trailing_slash_means_the_folder() {
        let filter = f(&["unet/"], &[]);
        assert!(filter.matches("unet/config.json"));
        assert!(filter.matches("unet/a/b.bin"));
        assert!(!filter.matches("unet"));
        assert!(!filter.matches("vae/config.json"));
    }

    #[test]
    fn ignore_wins_and_no_allow_means_all() {
        let filter = f(&[], &["*.fp16.*", "*.bin"]);
        assert!(filter.matches("README.md"));
        assert!(!filter.matches("unet/diffusion_pytorch_model.fp16.safetensors"));
        assert!(!filter.matches("text_encoder/pytorch_model.bin"));
    }

    #[test]
    fn fnmatch_literals_stay_literal() {
        let filter = f(&["a{b,c}.txt", "x[!y].md", "q?.md"], &[]);
        assert!(filter.matches("a{b,c}.txt"));
        assert!(!filter.matches("ab.txt"));
        assert!(filter.matches("xz.md"));
        assert!(!filter.matches("xy.md"));
        assert!(filter.matches("q1.md"));
        // Case-sensitive, like fnmatchcase.
        assert!(!f(&["*.JSON"], &[]).matches("a.json"));
    }
}
