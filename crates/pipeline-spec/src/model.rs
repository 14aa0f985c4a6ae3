//! The typed spec: what a valid YAML file turns into.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::validators::validate_repo_id;

/// The branch used when a spec names none.
pub const DEFAULT_REVISION: &str = "main";

/// A validated Hub repo id, `ORG/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoId(String);

impl RepoId {
    /// Validates `repo_id` with [`validate_repo_id`].
    pub fn new(repo_id: &str) -> Result<Self, String> {
        validate_repo_id(repo_id)?;
        Ok(RepoId(repo_id.to_owned()))
    }

    /// The id as written, `ORG/NAME`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The organisation (or user) part.
    pub fn org(&self) -> &str {
        self.0.split_once('/').map_or("", |(org, _)| org)
    }

    /// The name part.
    pub fn name(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, name)| name)
    }
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RepoId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RepoId::new(s)
    }
}

impl AsRef<str> for RepoId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A diffusers pipeline: a base repo plus per-component overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSpec {
    /// The spec's name; from `name:`, else the file's stem.
    pub name: String,
    /// The base repo every unlisted component comes from.
    pub repo_id: RepoId,
    /// The base repo's branch, tag or commit; `main` when not given.
    pub revision: String,
    /// The default variant (such as `fp16`) for components that do not choose their own.
    pub variant: Option<String>,
    /// Replaces the base repo's `model_index.json`.
    pub model_index: Option<ModelIndexOverride>,
    /// Components that do not simply come from the base repo, by name.
    pub components: BTreeMap<String, ComponentSource>,
}

impl PipelineSpec {
    /// A spec for `repo_id` at `main` with no overrides; `name` defaults to the repo's name.
    pub fn new(repo_id: RepoId) -> Self {
        PipelineSpec {
            name: repo_id.name().to_owned(),
            repo_id,
            revision: DEFAULT_REVISION.to_owned(),
            variant: None,
            model_index: None,
            components: BTreeMap::new(),
        }
    }

    /// The revision to use for `repo_id` when a component gives `explicit` (or nothing).
    ///
    /// A component's own revision wins. Otherwise the spec's revision applies when the
    /// component comes from the base repo itself, and `main` for any other repo: the
    /// top-level revision names a commit of the base repo, which means nothing elsewhere.
    pub fn revision_for<'a>(&'a self, repo_id: &RepoId, explicit: Option<&'a str>) -> &'a str {
        match explicit {
            Some(revision) => revision,
            None if *repo_id == self.repo_id => &self.revision,
            None => DEFAULT_REVISION,
        }
    }

    /// The components removed with `name: null`.
    pub fn removed_components(&self) -> impl Iterator<Item = &str> {
        self.components
            .iter()
            .filter(|(_, source)| matches!(source, ComponentSource::Removed))
            .map(|(name, _)| name.as_str())
    }
}

/// Where `model_index.json` comes from when the spec overrides it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ModelIndexOverride {
    /// A local JSON file.
    Path {
        /// The path as written in the spec.
        raw: String,
        /// The path with `~` expanded and made absolute against the spec's folder (when the
        /// spec was loaded from a file; otherwise against the current folder, as given).
        resolved: PathBuf,
    },
    /// The content, written inline in the spec.
    Inline(serde_json::Map<String, serde_json::Value>),
}

/// Where one component's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ComponentSource {
    /// A folder of a Hub repo, selected like diffusers does (`hf_repo: ORG/NAME[/subfolder]`).
    HfRepo {
        /// The repo.
        repo_id: RepoId,
        /// The folder inside the repo; `None` for the repo's root.
        subfolder: Option<String>,
        /// The revision; `None` defers to [`PipelineSpec::revision_for`].
        revision: Option<String>,
        /// Which weight variant to take.
        variant: VariantPref,
    },
    /// Exactly these files from Hub repos (`source: [ORG/NAME/path, ...]`).
    Files {
        /// The files, in the order written.
        files: Vec<RepoFile>,
        /// The revision for every file; `None` defers to [`PipelineSpec::revision_for`].
        revision: Option<String>,
    },
    /// A local folder (`local_path:`).
    LocalPath {
        /// The path as written.
        path: PathBuf,
        /// The path with `~` expanded and made absolute against the spec's folder.
        resolved: PathBuf,
    },
    /// Files downloaded from URLs (`urls: {filename: url}`).
    Urls {
        /// File name (a safe relative path) to URL: `https` (`http` to loopback hosts), or a scheme
        /// accepted through [`ParseOptions::url_schemes`](crate::ParseOptions).
        files: BTreeMap<String, String>,
        /// Optional SHA-256 pins (lowercase hex), by file name; every key is a key of `files`.
        sha256: BTreeMap<String, String>,
    },
    /// The component is dropped (`name: null`).
    Removed,
}

impl ComponentSource {
    /// The spec key that selects this kind of source (`hf_repo`, `source`, `local_path`,
    /// `urls`), or `null` for a removed component; handy for messages and listings.
    pub fn kind(&self) -> &'static str {
        match self {
            ComponentSource::HfRepo { .. } => "hf_repo",
            ComponentSource::Files { .. } => "source",
            ComponentSource::LocalPath { .. } => "local_path",
            ComponentSource::Urls { .. } => "urls",
            ComponentSource::Removed => "null",
        }
    }
}

/// One file of a Hub repo, from a `source:` entry `ORG/NAME/path/in/repo`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoFile {
    /// The repo.
    pub repo_id: RepoId,
    /// The path inside the repo.
    pub path: String,
}

impl fmt::Display for RepoFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.repo_id, self.path)
    }
}

/// Which weight variants a component accepts, best first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum VariantPref {
    /// Not given: the spec's top-level variant if any, falling back to no variant.
    #[default]
    Inherit,
    /// An explicit preference list; `None` means the files without a variant. Never empty.
    Prefer(Vec<Option<String>>),
}

impl VariantPref {
    /// The preference list to try in order, given the spec's top-level variant.
    ///
    /// ```
    /// use pipefetch_spec::VariantPref;
    /// assert_eq!(
    ///     VariantPref::Inherit.resolve(Some("fp16")),
    ///     vec![Some("fp16".to_owned()), None]
    /// );
    /// assert_eq!(VariantPref::Inherit.resolve(None), vec![None]);
    /// ```
    pub fn resolve(&self, top_level: Option<&str>) -> Vec<Option<String>> {
        match self {
            VariantPref::Inherit => match top_level {
                Some(variant) => vec![Some(variant.to_owned()), None],
                None => vec![None],
            },
            VariantPref::Prefer(list) => list.clone(),
        }
    }
}
