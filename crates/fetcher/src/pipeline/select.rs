//! Which files of a diffusers repo a pipeline needs, and under which names.
//!
//! Pure functions: a repo's file listing and its `model_index.json` in, a per-component list of files
//! out, each with the *canonical* path it must have in an assembled pipeline folder so that plain
//! `DiffusionPipeline.from_pretrained(folder)` (no `variant=`) loads every component. No network, no
//! disk.
//!
//! # The rules, and where they are stricter than diffusers
//!
//! The reference is `DiffusionPipeline.download` (`variant_compatible_siblings`,
//! `_get_ignore_patterns`, `is_safetensors_compatible`; see `docs/diffusers-selection.md`).
//!
//! - **Components** are the keys of `model_index.json` whose value is a two-element list
//!   `[library, class]`; `[null, null]` is an absent component. Keys starting with `_` and non-list
//!   values (`requires_safety_checker`, …) are not folders. Files named in `_ignore_files` are dropped
//!   first, like diffusers does.
//! - **Only component folders.** Diffusers downloads every weight-named file of the repo, also in
//!   folders no component uses (SDXL's `vae_1_0/`, 500 MB). Here only the folders of components are
//!   looked at, and never the root single-file checkpoints (`v1-5-pruned.safetensors`,
//!   `sd_xl_base_1.0.safetensors`).
//! - **Never downloaded:** ONNX (`.onnx`, `.pb`, `.onnx_data`), Flax (`.msgpack`), OpenVINO
//!   (`openvino_*`), `.ckpt`, `.pt`, `.pth`, `.gguf`, `.flashpack`. Diffusers does the same by
//!   default; here it is unconditional because the assembled folder is for PyTorch pipelines.
//! - **Model folders** (a component folder holding weight-named files) get exactly: the chosen weights
//!   (one file, or an index plus the shards it names), `config.json`, and for a custom component
//!   `<folder>/<library>.py` with the other `.py` files beside it (its relative imports must be
//!   there for an offline load). Nothing else: no README, `generation_config.json`, `.xml`.
//! - **Format and variant per component.** Diffusers decides safetensors vs pickle for the *whole*
//!   pipeline: one `.bin`-only (or fp16-only) folder flips every component to `.bin`. Here each
//!   component is decided alone, and a folder that has any `.safetensors` weights never gets `.bin`
//!   ones (pickle is slower and can run code). Within that format the first variant of the
//!   preference list that exists is taken (`[bf16, fp16, None]`: bf16 if present, else fp16, else the
//!   plain files). No match is an error naming the variants the folder does have, instead of
//!   diffusers' misleading "no file named diffusion_pytorch_model.bin" at load time.
//! - **Top-level variant.** A pipeline variant `V` inherited by base-repo components means
//!   `[V, None]` for each (diffusers: folders without `V` load their plain files), but when no model
//!   folder of the pipeline has `V` at all that is an error, as in diffusers.
//! - **Variant names** are only recognised in the documented name patterns, and a variant must be a
//!   safe token: an ASCII letter followed by letters, digits, `_` or `-`. So `ltx-2.3-22b.safetensors`
//!   is not a weight file and `model.2.3.safetensors` has no variant "2.3" (a version number parsed as
//!   a variant once published a mirror with no base weights).
//! - **Canonical names.** Variant files are presented under the plain names
//!   (`diffusion_pytorch_model.fp16.safetensors` → `diffusion_pytorch_model.safetensors`,
//!   `model.fp16-00001-of-00002.safetensors` → `model-00001-of-00002.safetensors`, both spellings of
//!   the variant index → `*.safetensors.index.json`, whose `weight_map` is rewritten by
//!   [`rewrite_index`]), so no `variant=` is needed to load the folder. A `.bin` choice keeps its
//!   `.bin` names.
//! - **All errors at once.** [`select_pipeline`] reports every failing component, not the first.
//!
//! # Why hand-written parsing instead of `regex`
//! There are six fixed name shapes (see [`WeightName::parse`]). Splitting on `.` and `-` reads as
//! clearly as the regexes, is exhaustively unit-tested, cannot be fooled by a variant containing
//! regex metacharacters, and keeps the dependency list short.
//!
//! # Example
//! ```
//! use pipefetch_fetcher::pipeline::select::{parse_model_index, select_pipeline, Listing, SelectOptions};
//!
//! let index = parse_model_index(br#"{"_class_name": "StableDiffusionPipeline",
//!     "unet": ["diffusers", "UNet2DConditionModel"], "scheduler": ["diffusers", "PNDMScheduler"]}"#)?;
//! let listing: Listing = [
//!     ("model_index.json", 500),
//!     ("scheduler/scheduler_config.json", 300),
//!     ("unet/config.json", 900),
//!     ("unet/diffusion_pytorch_model.safetensors", 3_400_000_000),
//!     ("unet/diffusion_pytorch_model.fp16.safetensors", 1_700_000_000),
//!     ("unet/diffusion_pytorch_model.bin", 3_400_000_000),
//! ]
//! .into_iter()
//! .map(|(path, size)| (path.to_string(), size, format!("etag-{path}")))
//! .collect();
//! let options = SelectOptions { variant: Some("fp16".into()), ..SelectOptions::default() };
//! let selection = select_pipeline(&listing, &index, &options).map_err(|e| e[0].to_string())?;
//! let unet = &selection.components[1];
//! assert_eq!(unet.files[1].repo_path, "unet/diffusion_pytorch_model.fp16.safetensors");
//! assert_eq!(unet.files[1].target, "diffusion_pytorch_model.safetensors");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};

mod error;
mod model_index;
mod weights;

pub use error::SelectError;
pub use model_index::{ComponentEntry, ModelIndex, PipelineClass, parse_model_index};
use weights::WEIGHT_PREFIXES;
pub use weights::{
    WeightFormat, WeightName, WeightPart, canonical_shard_name, canonical_weights_name,
    is_valid_variant, rewrite_index, shards_from_index,
};

/// One file of a repo listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// Size in bytes.
    pub size: u64,
    /// The Hub's etag (LFS sha256 or git blob id), carried through to the selection.
    pub etag: String,
}

/// A repo's files: path (with `/`) → size and etag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    files: BTreeMap<String, ListedFile>,
}

impl Listing {
    /// An empty listing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a file.
    pub fn insert(&mut self, path: impl Into<String>, size: u64, etag: impl Into<String>) {
        self.files.insert(
            path.into(),
            ListedFile {
                size,
                etag: etag.into(),
            },
        );
    }

    /// The file at `path`, if listed.
    pub fn get(&self, path: &str) -> Option<&ListedFile> {
        self.files.get(path)
    }

    /// All files in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ListedFile)> {
        self.files.iter().map(|(p, f)| (p.as_str(), f))
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Files below `folder/` (recursively), as (path relative to the folder, full path, info).
    fn under<'a>(
        &'a self,
        folder: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str, &'a ListedFile)> + 'a {
        let prefix = if folder.is_empty() {
            String::new()
        } else {
            format!("{folder}/")
        };
        let skip = prefix.len();
        self.files
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .map(|(p, f)| (p.as_str(), f))
            .take_while(move |(p, _)| p.starts_with(&prefix))
            .map(move |(p, f)| (&p[skip..], p, f))
    }

    fn top_folders(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self
            .files
            .keys()
            .filter_map(|p| p.split_once('/').map(|(d, _)| d))
            .collect();
        set.into_iter().map(str::to_string).collect()
    }
}

impl<P: Into<String>, E: Into<String>> FromIterator<(P, u64, E)> for Listing {
    fn from_iter<I: IntoIterator<Item = (P, u64, E)>>(iter: I) -> Self {
        let mut listing = Listing::new();
        for (path, size, etag) in iter {
            listing.insert(path, size, etag);
        }
        listing
    }
}

/// `folder/rel`, or `rel` for the repo root.
fn join(folder: &str, rel: &str) -> String {
    if folder.is_empty() {
        rel.to_string()
    } else {
        format!("{folder}/{rel}")
    }
}

/// A single path segment that is safe to join to a folder.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0'])
}

/// What a file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FileRole {
    /// `config.json`, `model_index.json`.
    Config,
    /// A single weights file.
    Weights,
    /// One shard of sharded weights.
    Shard,
    /// The shard index (its `weight_map` needs [`rewrite_index`] when a variant was chosen).
    Index,
    /// Python code loaded with `trust_remote_code`.
    CustomCode,
    /// Anything else of a whole-folder component (tokenizer files, scheduler config, …).
    Other,
}

/// One file to fetch, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedFile {
    /// Path in the repo.
    pub repo_path: String,
    /// Canonical path relative to the component folder (or the pipeline root for root files).
    pub target: String,
    /// Size in bytes, from the listing.
    pub size: u64,
    /// Etag, from the listing.
    pub etag: String,
    /// What it is for.
    pub role: FileRole,
}

/// How a component's files were chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ComponentKind {
    /// A model folder: one weight set plus `config.json`.
    Model {
        /// The chosen variant (`None` = plain files).
        variant: Option<String>,
        /// The chosen format.
        format: WeightFormat,
        /// Whether the weights are an index plus shards.
        sharded: bool,
    },
    /// Everything in the folder (tokenizer, scheduler, feature extractor, …).
    WholeFolder,
}

/// The files of one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentSelection {
    /// The component name (folder name in the assembled pipeline).
    pub name: String,
    /// Its folder in the source repo.
    pub folder: String,
    /// How the files were chosen.
    pub kind: ComponentKind,
    /// The files to fetch, sorted by target. The shard index is not among them (see `index`).
    pub files: Vec<SelectedFile>,
    /// The shard index of a sharded model: fetch it, pass it to [`shards_from_index`] and
    /// [`ComponentSelection::add_shards`], and write it as `target` through [`rewrite_index`].
    pub index: Option<SelectedFile>,
}

impl ComponentSelection {
    /// Adds the shards an index names (from [`shards_from_index`]) under their canonical names.
    /// Errors if a name is not a plain file name, a shard is not in the listing, or two files would
    /// share a name; on error the selection is unchanged.
    pub fn add_shards(
        &mut self,
        listing: &Listing,
        shards: &BTreeSet<String>,
    ) -> Result<(), SelectError> {
        let (
            ComponentKind::Model {
                variant,
                sharded: true,
                ..
            },
            Some(index),
        ) = (&self.kind, &self.index)
        else {
            return Err(SelectError::NotSharded {
                component: self.name.clone(),
            });
        };
        let mut added = Vec::new();
        let mut missing = Vec::new();
        for shard in shards {
            if !is_plain_name(shard) {
                return Err(SelectError::InvalidShardName {
                    component: self.name.clone(),
                    index: index.repo_path.clone(),
                    shard: shard.clone(),
                });
            }
            let repo_path = join(&self.folder, shard);
            match listing.get(&repo_path) {
                Some(info) => added.push(SelectedFile {
                    target: canonical_shard_name(shard, variant.as_deref()),
                    repo_path,
                    size: info.size,
                    etag: info.etag.clone(),
                    role: FileRole::Shard,
                }),
                None => missing.push(shard.clone()),
            }
        }
        if !missing.is_empty() {
            return Err(SelectError::MissingShards {
                component: self.name.clone(),
                index: index.repo_path.clone(),
                missing,
            });
        }
        let mut files = self.files.clone();
        files.extend(
            added
                .into_iter()
                .filter(|f| !self.files.iter().any(|g| g.repo_path == f.repo_path)),
        );
        check_collisions(&self.name, &mut files, Some(index))?;
        self.files = files;
        Ok(())
    }

    /// Total bytes of the files known so far (shards count once added; the index included).
    pub fn size(&self) -> u64 {
        self.files.iter().chain(&self.index).map(|f| f.size).sum()
    }
}

/// Sorts by target and refuses two files with the same target.
fn check_collisions(
    component: &str,
    files: &mut [SelectedFile],
    index: Option<&SelectedFile>,
) -> Result<(), SelectError> {
    files.sort_by(|a, b| {
        a.target
            .cmp(&b.target)
            .then_with(|| a.repo_path.cmp(&b.repo_path))
    });
    let pairs = files.windows(2).map(|w| (&w[0], &w[1]));
    let with_index = index
        .into_iter()
        .flat_map(|i| files.iter().map(move |f| (i, f)));
    for (a, b) in pairs.chain(with_index) {
        if a.target == b.target {
            return Err(SelectError::TargetCollision {
                component: component.to_string(),
                target: a.target.clone(),
                first: a.repo_path.clone(),
                second: b.repo_path.clone(),
            });
        }
    }
    Ok(())
}

/// Kinds of files never fetched into any folder (ONNX, Flax, OpenVINO, other checkpoint formats).
fn never_downloaded(basename: &str) -> bool {
    let ext = basename.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    basename.starts_with("openvino_")
        || matches!(
            ext,
            "onnx" | "pb" | "onnx_data" | "msgpack" | "ckpt" | "pt" | "pth" | "gguf" | "flashpack"
        )
}

/// Whether a folder's direct child makes it a model folder: a weight prefix followed by `.` or `-`
/// and a weight-like extension (also formats we never fetch, so an ONNX-only or Flax-only folder is
/// reported as having no usable weights rather than fetched as a plain folder), or OpenVINO weights.
fn is_weight_like(basename: &str) -> bool {
    let ext = basename.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let weight_ext = matches!(
        ext,
        "safetensors"
            | "bin"
            | "onnx"
            | "pb"
            | "onnx_data"
            | "msgpack"
            | "ckpt"
            | "pt"
            | "pth"
            | "gguf"
            | "flashpack"
    );
    let prefixed = WEIGHT_PREFIXES.iter().any(|p| {
        basename
            .strip_prefix(p)
            .is_some_and(|rest| rest.starts_with(['.', '-']))
    });
    (prefixed && weight_ext) || basename.starts_with("openvino_model.")
}

/// One weight set of a folder (one format, variant and base name): a single file and/or an index.
#[derive(Debug, Default)]
struct WeightSet<'a> {
    single: Option<&'a str>,
    index: Option<&'a str>,
    legacy_index: Option<&'a str>,
}

/// Chooses the files of one component from `folder/` of `listing` (`""`: the repo root, for a repo
/// that is one component, like `madebyollin/sdxl-vae-fp16-fix`).
///
/// `prefs` is the variant preference list (`None` = the plain files); an empty list means `[None]`.
/// A model folder takes the first preference that exists as `.safetensors`, or, only when the folder
/// has no `.safetensors` weights at all, as `.bin`. A folder without weight files is taken whole,
/// minus the kinds never downloaded. `library` decides the custom code file and, when a folder holds
/// several weight base names, which one is taken. At the repo root a folder without weight files is
/// taken without subfolders and without any weight-like file (single-file checkpoints), since the
/// root of a repo is not a component folder in diffusers' sense.
pub fn select_component(
    listing: &Listing,
    name: &str,
    folder: &str,
    library: &str,
    prefs: &[Option<String>],
) -> Result<ComponentSelection, SelectError> {
    for v in prefs.iter().flatten() {
        if !is_valid_variant(v) {
            return Err(SelectError::InvalidVariant { variant: v.clone() });
        }
    }
    let children: Vec<(&str, &str, &ListedFile)> = listing.under(folder).collect();
    let direct = || children.iter().filter(|(rel, _, _)| !rel.contains('/'));
    let file = |rel: &str, full: &str, info: &ListedFile, target: String, role| SelectedFile {
        repo_path: full.to_string(),
        target: if target.is_empty() {
            rel.to_string()
        } else {
            target
        },
        size: info.size,
        etag: info.etag.clone(),
        role,
    };

    if !direct().any(|(rel, _, _)| is_weight_like(rel)) {
        let at_root = folder.is_empty();
        let root_excluded = |rel: &str| {
            rel.contains('/')
                || rel == ".gitattributes"
                || rel.ends_with(".safetensors")
                || rel.ends_with(".bin")
        };
        let mut files: Vec<SelectedFile> = children
            .iter()
            .filter(|(rel, _, _)| !never_downloaded(rel.rsplit('/').next().unwrap_or(rel)))
            .filter(|(rel, _, _)| !(at_root && root_excluded(rel)))
            .map(|(rel, full, info)| {
                let role = if rel.ends_with(".py") {
                    FileRole::CustomCode
                } else {
                    FileRole::Other
                };
                file(rel, full, info, String::new(), role)
            })
            .collect();
        check_collisions(name, &mut files, None)?;
        return Ok(ComponentSelection {
            name: name.to_string(),
            folder: folder.to_string(),
            kind: ComponentKind::WholeFolder,
            files,
            index: None,
        });
    }

    // Group the folder's weight files by (format, variant, prefix).
    let mut sets: BTreeMap<(WeightFormat, Option<&str>, &str), WeightSet<'_>> = BTreeMap::new();
    for (rel, _, _) in direct() {
        let Some(w) = WeightName::parse(rel) else {
            continue;
        };
        let set = sets.entry((w.format, w.variant, w.prefix)).or_default();
        match (w.part, w.legacy) {
            (WeightPart::Single, _) => set.single = Some(rel),
            (WeightPart::Index, false) => set.index = Some(rel),
            (WeightPart::Index, true) => set.legacy_index = Some(rel),
            // Shards are taken from the index, never guessed from the listing: an index-less set
            // cannot be loaded.
            (WeightPart::Shard { .. }, _) => {}
        }
    }
    sets.retain(|_, s| s.single.is_some() || s.index.is_some() || s.legacy_index.is_some());
    let all_files = || {
        direct()
            .map(|(rel, _, _)| rel.to_string())
            .collect::<Vec<_>>()
    };
    if sets.is_empty() {
        return Err(SelectError::NoUsableWeights {
            component: name.to_string(),
            folder: folder.to_string(),
            files: all_files(),
        });
    }
    let format = if sets.keys().any(|(f, _, _)| *f == WeightFormat::Safetensors) {
        WeightFormat::Safetensors
    } else {
        WeightFormat::Bin
    };
    let available: BTreeSet<Option<&str>> = sets
        .keys()
        .filter(|(f, _, _)| *f == format)
        .map(|(_, v, _)| *v)
        .collect();
    let default_prefs = [None];
    let prefs = if prefs.is_empty() {
        &default_prefs[..]
    } else {
        prefs
    };
    let Some(variant) = prefs.iter().find(|p| available.contains(&p.as_deref())) else {
        let only_as_bin = prefs
            .iter()
            .filter(|p| {
                sets.keys()
                    .any(|(f, v, _)| *f == WeightFormat::Bin && *v == p.as_deref())
            })
            .cloned()
            .collect::<Vec<_>>();
        return Err(SelectError::VariantNotFound {
            component: name.to_string(),
            wanted: prefs.to_vec(),
            available: sort_variants(available.into_iter().map(|v| v.map(str::to_string))),
            only_as_bin: if format == WeightFormat::Safetensors {
                only_as_bin
            } else {
                Vec::new()
            },
        });
    };

    // Among the base names with this format and variant, prefer the one the library loads.
    let preferred = canonical_weights_name(library, format)
        .split('.')
        .next()
        .unwrap_or_default();
    let candidates: Vec<(&str, &WeightSet<'_>)> = sets
        .iter()
        .filter(|((f, v, _), _)| *f == format && *v == variant.as_deref())
        .map(|((_, _, p), s)| (*p, s))
        .collect();
    let (_, set) = candidates
        .iter()
        .find(|(p, _)| *p == preferred)
        .or_else(|| candidates.first())
        .copied()
        .ok_or_else(|| SelectError::NoUsableWeights {
            component: name.to_string(),
            folder: folder.to_string(),
            files: all_files(),
        })?;

    let lookup = |rel: &str| {
        listing
            .get(&join(folder, rel))
            .map(|info| (join(folder, rel), info))
    };
    let mut files = Vec::new();
    let mut index = None;
    // A single file is preferred to an index when both exist: either loads, and one file is less
    // to fetch. The current index spelling is preferred to the legacy one, as in diffusers.
    if let Some(single) = set.single
        && let (Some((full, info)), Some(w)) = (lookup(single), WeightName::parse(single))
    {
        files.push(file(single, &full, info, w.canonical(), FileRole::Weights));
    } else if let Some(idx) = set.index.or(set.legacy_index)
        && let (Some((full, info)), Some(w)) = (lookup(idx), WeightName::parse(idx))
    {
        index = Some(file(idx, &full, info, w.canonical(), FileRole::Index));
    }
    match lookup("config.json") {
        Some((full, info)) => files.push(file(
            "config.json",
            &full,
            info,
            String::new(),
            FileRole::Config,
        )),
        None => {
            return Err(SelectError::MissingConfig {
                component: name.to_string(),
                folder: folder.to_string(),
            });
        }
    }
    if !matches!(library, "diffusers" | "transformers")
        && lookup(&format!("{library}.py")).is_some()
    {
        for (rel, full, info) in direct().filter(|(rel, _, _)| rel.ends_with(".py")) {
            files.push(file(rel, full, info, String::new(), FileRole::CustomCode));
        }
    }
    check_collisions(name, &mut files, index.as_ref())?;
    Ok(ComponentSelection {
        name: name.to_string(),
        folder: folder.to_string(),
        kind: ComponentKind::Model {
            variant: variant.clone(),
            format,
            sharded: index.is_some(),
        },
        files,
        index,
    })
}

/// Variants sorted by name, the plain files (`None`) last.
fn sort_variants(vs: impl IntoIterator<Item = Option<String>>) -> Vec<Option<String>> {
    let mut v: Vec<Option<String>> = vs
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    v.sort_by(|a, b| match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (Some(a), Some(b)) => a.cmp(b),
    });
    v
}

/// Options for [`select_pipeline`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectOptions {
    /// Components not to select at all (overridden by another source, or dropped by the spec).
    pub skip: BTreeSet<String>,
    /// The pipeline's variant; a component without its own preferences uses `[variant, None]`.
    pub variant: Option<String>,
    /// Per-component variant preference lists; they replace the pipeline variant for that component.
    pub component_variants: BTreeMap<String, Vec<Option<String>>>,
}

/// The files of a whole pipeline from one repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSelection {
    /// The selected components, by name.
    pub components: Vec<ComponentSelection>,
    /// Root files (`model_index.json`, custom pipeline code), targets relative to the pipeline root.
    pub root_files: Vec<SelectedFile>,
}

/// Chooses every file a pipeline needs from one repo; see the module docs for the rules. Returns
/// all errors (one or more per failing component), not just the first.
pub fn select_pipeline(
    listing: &Listing,
    index: &ModelIndex,
    options: &SelectOptions,
) -> Result<PipelineSelection, Vec<SelectError>> {
    let mut errors = Vec::new();
    if let Some(v) = &options.variant
        && !is_valid_variant(v)
    {
        return Err(vec![SelectError::InvalidVariant { variant: v.clone() }]);
    }
    let ignored: BTreeSet<&str> = index.ignore_files.iter().map(String::as_str).collect();
    let listing: Listing = Listing {
        files: listing
            .files
            .iter()
            .filter(|(p, _)| !ignored.contains(p.as_str()))
            .map(|(p, f)| (p.clone(), f.clone()))
            .collect(),
    };

    let mut root_files = Vec::new();
    let root = |path: &str, role| {
        listing.get(path).map(|info| SelectedFile {
            repo_path: path.to_string(),
            target: path.to_string(),
            size: info.size,
            etag: info.etag.clone(),
            role,
        })
    };
    match root("model_index.json", FileRole::Config) {
        Some(f) => root_files.push(f),
        None => errors.push(SelectError::MissingModelIndex),
    }
    if let Some(PipelineClass::Custom { module, .. }) = &index.class_name {
        match root(&format!("{module}.py"), FileRole::CustomCode) {
            Some(f) => root_files.push(f),
            None => errors.push(SelectError::MissingCustomPipeline {
                module: module.clone(),
            }),
        }
    }
    if let Some(f) = root("pipeline.py", FileRole::CustomCode)
        && !root_files.iter().any(|g| g.repo_path == f.repo_path)
    {
        root_files.push(f);
    }

    let mut components = Vec::new();
    let mut inheriting = Vec::new();
    let repo_folders = listing.top_folders();
    for (name, entry) in &index.components {
        let ComponentEntry::Present { library, class } = entry else {
            continue;
        };
        if options.skip.contains(name) {
            continue;
        }
        if listing.under(name).next().is_none() {
            errors.push(SelectError::MissingFolder {
                component: name.clone(),
                folder: name.clone(),
                library: library.clone(),
                class: class.clone(),
                repo_folders: repo_folders.clone(),
            });
            continue;
        }
        let prefs = match (options.component_variants.get(name), &options.variant) {
            (Some(own), _) => own.clone(),
            (None, Some(v)) => {
                inheriting.push(name.as_str());
                vec![Some(v.clone()), None]
            }
            (None, None) => vec![None],
        };
        match select_component(&listing, name, name, library, &prefs) {
            Ok(selection) => components.push(selection),
            Err(e) => errors.push(e),
        }
    }

    // Like diffusers, a pipeline variant that no model folder has is a mistake, not a silent
    // fallback to the plain weights everywhere.
    if let Some(v) = &options.variant {
        let mut folders = Vec::new();
        let mut available = BTreeSet::new();
        for name in inheriting {
            let variants = folder_variants(&listing, name);
            if !variants.is_empty() {
                folders.push(name.to_string());
                available.extend(variants);
            }
        }
        if !folders.is_empty() && !available.contains(&Some(v.clone())) {
            errors.push(SelectError::PipelineVariantNotFound {
                variant: v.clone(),
                folders,
                available: sort_variants(available),
            });
        }
    }

    if errors.is_empty() {
        Ok(PipelineSelection {
            components,
            root_files,
        })
    } else {
        Err(errors)
    }
}

/// The variants of the loadable weight files directly in `folder/` (any format).
fn folder_variants(listing: &Listing, folder: &str) -> BTreeSet<Option<String>> {
    listing
        .under(folder)
        .filter(|(rel, _, _)| !rel.contains('/'))
        .filter_map(|(rel, _, _)| WeightName::parse(rel))
        .map(|w| w.variant.map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_sort_plain_last() {
        let sorted = sort_variants([None, Some("fp16".to_string()), Some("bf16".to_string())]);
        assert_eq!(
            sorted,
            vec![Some("bf16".to_string()), Some("fp16".to_string()), None]
        );
    }
}
