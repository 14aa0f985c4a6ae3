//! The pipefetch pipeline spec: a YAML file that describes a diffusers pipeline.
//!
//! A spec names a base Hub repo and, per component, where else its files come from: another
//! repo's folder (`hf_repo`), exactly listed files (`source`), a local folder (`local_path`)
//! or URLs (`urls`); `null` drops a component. This crate turns the text into a typed
//! [`PipelineSpec`], or into *every* problem found, each with its line, column, an excerpt
//! and a hint ([`Diagnostics`]). It does no I/O beyond reading the file: whether a repo, a
//! remote file or a local folder exists is checked when pulling.
//!
//! ```
//! use pipefetch_spec::{ComponentSource, parse_str};
//!
//! let yaml = "\
//! repo_id: stabilityai/stable-diffusion-xl-base-1.0
//! variant: fp16
//! components:
//!   vae:
//!     hf_repo: madebyollin/sdxl-vae-fp16-fix
//! ";
//! let spec = parse_str(yaml, "sdxl.yaml").unwrap();
//! assert_eq!(spec.name, "sdxl");
//! assert_eq!(spec.revision, "main");
//! assert!(matches!(spec.components["vae"], ComponentSource::HfRepo { .. }));
//!
//! let errors = parse_str("repo_id: stabilityai/sdxl\ncomponents:\n  vae:\n    hf_rpo: a/b\n", "x.yaml")
//!     .unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     "error: unknown key `hf_rpo` in component `vae`\n --> x.yaml:4:5\n  |\n4 |     hf_rpo: a/b\n  |     ^^^^^^\n  = help: did you mean `hf_repo`?\n"
//! );
//! ```
//!
//! # Design decisions
//!
//! - **Own tree, not serde.** Deriving `Deserialize` would stop at the first problem, lose
//!   positions and let duplicate keys through. Instead the YAML parser's events (from
//!   `granit-parser`, re-exported by `serde-saphyr`) build a small tree whose nodes carry
//!   their line and column; the checker walks it, reports each problem and goes on, and builds
//!   the typed spec only when nothing was found.
//! - **One description of the format for writing and for the schema.** [`PipelineSpec::to_yaml`]
//!   and [`json_schema`] share serde types (`format.rs`); a round-trip property test keeps
//!   them in step with the reader, and a test keeps `schema/pipeline-spec.schema.json` current.
//! - **Static checks only.** Paths are resolved (`~`, relative to the spec) but not touched, so
//!   validating is fast, deterministic and works offline.
//! - **Shared validators.** The single-value rules ([`validate_repo_id`], [`validate_revision`],
//!   [`validate_variant`], [`validate_relative_path`], [`validate_url`], ...) are public, so the
//!   other crates apply the same rules to command-line arguments.
//! - **Never a panic.** Input is capped at [`MAX_SPEC_BYTES`], aliases are refused (no
//!   expansion bombs), the parser's nesting limits bound recursion, and property tests feed
//!   arbitrary and mutated text.

#![deny(missing_docs)]

mod check;
mod diagnostic;
mod error;
mod format;
mod model;
mod source;
mod tree;
mod validators;

use std::io::Read;
use std::path::Path;

pub use diagnostic::{Diagnostic, Diagnostics, Severity};
pub use error::{Error, MAX_SPEC_BYTES};
pub use model::{
    ComponentSource, DEFAULT_REVISION, ModelIndexOverride, PipelineSpec, RepoFile, RepoId,
    VariantPref,
};
pub use validators::{
    MAX_REPO_PART_LEN, MAX_REVISION_LEN, MAX_VARIANT_LEN, validate_component_name,
    validate_relative_path, validate_repo_id, validate_revision, validate_sha256,
    validate_spec_name, validate_url, validate_variant,
};

/// The most diagnostics reported for one spec; a file that is not a spec at all would
/// otherwise bury the terminal.
pub const MAX_DIAGNOSTICS: usize = 100;

/// The keys allowed at the top of a spec, in documentation order.
pub const TOP_LEVEL_KEYS: &[&str] = check::TOP_KEYS;

/// The keys allowed in a component, in documentation order.
pub const COMPONENT_KEYS: &[&str] = check::COMPONENT_KEYS;

/// What a reader of specs accepts beyond the format's own rules.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ParseOptions {
    /// URL schemes accepted in `urls:` besides `https` (and `http` to loopback hosts): the
    /// schemes of the sources an application registered, such as `file` or `s3`.
    pub url_schemes: Vec<String>,
}

impl ParseOptions {
    /// Also accept `scheme://` URLs in `urls:`.
    pub fn url_scheme(mut self, scheme: impl Into<String>) -> Self {
        self.url_schemes.push(scheme.into().to_ascii_lowercase());
        self
    }
}

/// Parses and validates a spec held in memory.
///
/// `origin` names the text in diagnostics, gives the default `name` (its stem) and the folder
/// that relative `local_path` and `model_index` paths are resolved against (its parent, as
/// given; pass an absolute path to get absolute results).
pub fn parse_str(text: &str, origin: impl AsRef<Path>) -> Result<PipelineSpec, Diagnostics> {
    parse_str_with(text, origin, &ParseOptions::default())
}

/// [`parse_str`] with options (extra URL schemes).
pub fn parse_str_with(
    text: &str,
    origin: impl AsRef<Path>,
    options: &ParseOptions,
) -> Result<PipelineSpec, Diagnostics> {
    let origin = origin.as_ref();
    let file = origin.display().to_string();
    if text.len() as u64 > MAX_SPEC_BYTES {
        let error = Error::TooLarge {
            path: origin.to_owned(),
            size: text.len() as u64,
        };
        return Err(error.into());
    }
    let original = source::Source::new(file.clone(), text);
    // Some mistakes make the parser fail later and elsewhere; they are found up front.
    let mut diagnostics: Vec<Diagnostic> = original.tab_errors();
    // A tab in the indentation stops a YAML parser cold; to still report every other problem at
    // once, the rest of the checks run on the text with those tabs read as four spaces (the usual
    // editor setting; only columns on those lines shift).
    let patched: String;
    let source = if diagnostics.is_empty() {
        original
    } else {
        patched = untab_indentation(text);
        source::Source::new(file, &patched)
    };
    let keys: Vec<&str> = TOP_LEVEL_KEYS
        .iter()
        .chain(COMPONENT_KEYS)
        .copied()
        .collect();
    diagnostics.extend(source.missing_space_errors(&keys));
    let found_up_front = !diagnostics.is_empty();
    let (root, problems) = tree::parse(&source);
    for problem in problems {
        // A syntax error after such a mistake is almost always caused by it; the mistake's
        // own message says what to do, so the parser's is dropped.
        if !found_up_front || !problem.message.starts_with("invalid YAML") {
            diagnostics.push(source.error(problem.pos, problem.message, problem.help));
        }
    }
    let base_dir = origin.parent().unwrap_or(Path::new(""));
    let stem = origin.file_stem().and_then(|stem| stem.to_str());
    let context = check::Context {
        base_dir,
        stem,
        url_schemes: &options.url_schemes,
    };
    let mut checker = check::Checker::new(&source, context);
    // After a syntax error the tree is gone; checking nothing would only add "the spec is
    // empty" on top of the real problem.
    let root_is_mapping = root
        .as_ref()
        .is_some_and(|node| matches!(node.kind, tree::Kind::Map(_)));
    let parsed_fully = !diagnostics
        .iter()
        .any(|d| d.message.starts_with("invalid YAML"))
        && (root_is_mapping || !found_up_front);
    let spec = if parsed_fully {
        checker.spec(root.as_ref())
    } else {
        None
    };
    diagnostics.extend(checker.into_diagnostics());
    diagnostics.sort_by_key(|d| (d.line, d.column));
    if diagnostics.len() > MAX_DIAGNOSTICS {
        let more = diagnostics.len() - MAX_DIAGNOSTICS;
        diagnostics.truncate(MAX_DIAGNOSTICS);
        diagnostics.push(
            Diagnostic::file_error(
                origin.display().to_string(),
                format!("{more} more problems not shown"),
            )
            .with_help("fix the problems above and validate again"),
        );
    }
    match spec {
        Some(spec) if diagnostics.is_empty() => Ok(spec),
        _ => Err(diagnostics.into()),
    }
}

/// `text` with every tab in a line's indentation replaced by four spaces.
fn untab_indentation(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        for c in line[..indent].chars() {
            if c == '\t' {
                out.push_str("    ");
            } else {
                out.push(c);
            }
        }
        out.push_str(&line[indent..]);
    }
    out
}

/// Reads, parses and validates a spec file.
///
/// I/O problems (missing file, not UTF-8, over [`MAX_SPEC_BYTES`]) come back as diagnostics
/// too, so that a caller validating many files renders everything the same way. Relative
/// paths in the spec are resolved against the file's folder, made absolute.
pub fn load_file(path: impl AsRef<Path>) -> Result<PipelineSpec, Diagnostics> {
    load_file_with(path, &ParseOptions::default())
}

/// [`load_file`] with options (extra URL schemes).
pub fn load_file_with(
    path: impl AsRef<Path>,
    options: &ParseOptions,
) -> Result<PipelineSpec, Diagnostics> {
    let path = path.as_ref();
    let text = read_spec_file(path)?;
    let origin = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    // Diagnostics name the file as the user wrote it; resolution uses the absolute path.
    parse_str_with(&text, &origin, options).map_err(|diagnostics| {
        let shown = path.display().to_string();
        diagnostics
            .into_iter()
            .map(|mut d| {
                d.file.clone_from(&shown);
                d
            })
            .collect::<Vec<_>>()
            .into()
    })
}

/// Reads a spec file as text, refusing files over [`MAX_SPEC_BYTES`] and non-UTF-8 content.
pub fn read_spec_file(path: impl AsRef<Path>) -> Result<String, Error> {
    let path = path.as_ref();
    let read_error = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let metadata = file.metadata().map_err(read_error)?;
    if metadata.is_dir() {
        return Err(read_error(std::io::Error::from(
            std::io::ErrorKind::IsADirectory,
        )));
    }
    if metadata.len() > MAX_SPEC_BYTES {
        return Err(Error::TooLarge {
            path: path.to_owned(),
            size: metadata.len(),
        });
    }
    // The size can change between the check and the read (a file being written, a pipe);
    // reading one byte past the cap catches that without reading everything.
    let mut bytes = Vec::new();
    file.take(MAX_SPEC_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(Error::TooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
        });
    }
    String::from_utf8(bytes).map_err(|err| {
        let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
        let before = String::from_utf8_lossy(valid);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        Error::NotUtf8 {
            path: path.to_owned(),
            line,
            column,
            source: err.utf8_error(),
        }
    })
}

impl PipelineSpec {
    /// Parses and validates a spec held in memory; see [`parse_str`].
    pub fn parse(text: &str, origin: impl AsRef<Path>) -> Result<Self, Diagnostics> {
        parse_str(text, origin)
    }

    /// Reads, parses and validates a spec file; see [`load_file`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Diagnostics> {
        load_file(path)
    }

    /// Writes the spec as YAML that parses back to an equal spec (given the same origin).
    ///
    /// The name and revision are always written, so the result does not depend on the file it
    /// is saved under.
    pub fn to_yaml(&self) -> String {
        format::to_yaml(self)
    }
}

/// The JSON Schema of the spec format (draft 2020-12), pretty-printed with a final newline.
///
/// The checked-in `schema/pipeline-spec.schema.json` is this text; point an editor's YAML
/// extension at it for completion and checks.
pub fn json_schema() -> String {
    format::json_schema()
}
