//! What can go wrong while choosing files, worded for the user.

/// What can go wrong while choosing files. Each message names the component and what was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    /// `model_index.json` is not a JSON object of the expected shape.
    #[error("model_index.json is invalid: {reason}")]
    InvalidModelIndex {
        /// What is wrong.
        reason: String,
        /// The JSON parser's error, if that is what failed.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// The listing has no `model_index.json` at the root.
    #[error("the repo has no model_index.json at its root, so it is not a diffusers pipeline")]
    MissingModelIndex,
    /// A variant name is not a safe token.
    #[error(
        "`{variant}` is not a valid variant: use an ASCII letter followed by letters, digits, `_` or `-` (like fp16, bf16, non_ema)"
    )]
    InvalidVariant {
        /// The rejected name.
        variant: String,
    },
    /// A present component has no folder (no file below `<folder>/`).
    #[error("component `{component}` ({library} {class}) has no folder `{folder}/` in the repo; its folders are: {}", list_or_none(.repo_folders))]
    MissingFolder {
        /// The component.
        component: String,
        /// Its folder in the repo.
        folder: String,
        /// Library from model_index.json.
        library: String,
        /// Class from model_index.json.
        class: String,
        /// The top-level folders the repo does have.
        repo_folders: Vec<String>,
    },
    /// A model folder has weight-named files, but none diffusers can load as PyTorch weights.
    #[error("component `{component}`: {} has no .safetensors or .bin weights; it has: {}", folder_label(.folder), list_or_none(.files))]
    NoUsableWeights {
        /// The component.
        component: String,
        /// Its folder.
        folder: String,
        /// The folder's files (relative to the folder).
        files: Vec<String>,
    },
    /// A model folder has no `config.json`.
    #[error("component `{component}`: {} has weights but no config.json", folder_label(.folder))]
    MissingConfig {
        /// The component.
        component: String,
        /// Its folder.
        folder: String,
    },
    /// None of the preferred variants exists in the folder.
    #[error("{component}: variant {} not found; available: {}{}",
        .wanted.iter().map(|v| quoted_variant(v.as_deref())).collect::<Vec<_>>().join(" or "),
        variant_list(.available),
        bin_note(.only_as_bin))]
    VariantNotFound {
        /// The component.
        component: String,
        /// The preference list, in order (`None` = plain files).
        wanted: Vec<Option<String>>,
        /// The variants the folder has, in the format that was searched.
        available: Vec<Option<String>>,
        /// Wanted variants that exist only as `.bin`, which is not used when safetensors exist.
        only_as_bin: Vec<Option<String>>,
    },
    /// The pipeline variant exists in none of the model folders that inherit it.
    #[error("variant \"{variant}\" is not available in any model folder of the pipeline ({}); variants found: {}",
        .folders.join(", "), variant_list(.available))]
    PipelineVariantNotFound {
        /// The pipeline's variant.
        variant: String,
        /// The model folders that would have used it.
        folders: Vec<String>,
        /// Variants those folders do have.
        available: Vec<Option<String>>,
    },
    /// A shard index could not be read.
    #[error("shard index is invalid: {reason}")]
    InvalidShardIndex {
        /// What is wrong.
        reason: String,
        /// The JSON parser's error, if that is what failed.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// A shard name in an index is not a plain file name in the component folder.
    #[error(
        "component `{component}`: shard index `{index}` names `{shard}`, which is not a file name inside the folder"
    )]
    InvalidShardName {
        /// The component.
        component: String,
        /// The index file.
        index: String,
        /// The offending name.
        shard: String,
    },
    /// Shards named by the index are not in the repo.
    #[error("component `{component}`: shard index `{index}` names files the repo does not have: {}", .missing.join(", "))]
    MissingShards {
        /// The component.
        component: String,
        /// The index file.
        index: String,
        /// The missing shards (relative to the folder).
        missing: Vec<String>,
    },
    /// Two files would get the same canonical name.
    #[error("component `{component}`: `{first}` and `{second}` would both be named `{target}`")]
    TargetCollision {
        /// The component.
        component: String,
        /// The canonical name.
        target: String,
        /// One repo path.
        first: String,
        /// The other repo path.
        second: String,
    },
    /// `add_shards` was called on a component that is not a sharded model.
    #[error("component `{component}` is not a sharded model; it has no shards to add")]
    NotSharded {
        /// The component.
        component: String,
    },
    /// `_class_name` names a custom pipeline module whose file is not in the repo.
    #[error(
        "model_index.json names the custom pipeline `{module}`, but the repo has no `{module}.py` at its root"
    )]
    MissingCustomPipeline {
        /// The module name.
        module: String,
    },
}

impl SelectError {
    /// What a person can do about it, when there is something to do.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::VariantNotFound {
                component,
                available,
                ..
            } => {
                let first = available.first()?;
                Some(match first {
                    Some(v) => format!("set `variant: {v}` for `{component}`"),
                    None => format!("drop the variant for `{component}` to use its plain weights"),
                })
            }
            Self::PipelineVariantNotFound { .. } => {
                Some("drop the pipeline's `variant`, or set it per component".into())
            }
            Self::MissingFolder { component, .. } | Self::NoUsableWeights { component, .. } => {
                Some(format!(
                    "give `{component}` another source in the spec, or set it to null if the pipeline allows it"
                ))
            }
            Self::InvalidVariant { .. } => {
                Some("common variants are fp16, bf16, fp8, non_ema, ema".into())
            }
            _ => None,
        }
    }
}

fn folder_label(folder: &str) -> String {
    if folder.is_empty() {
        "the repo root".into()
    } else {
        format!("`{folder}/`")
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(nothing)".into()
    } else {
        items.join(", ")
    }
}

fn quoted_variant(v: Option<&str>) -> String {
    match v {
        Some(v) => format!("\"{v}\""),
        None => "(none)".into(),
    }
}

fn variant_list(vs: &[Option<String>]) -> String {
    if vs.is_empty() {
        return "(nothing)".into();
    }
    vs.iter()
        .map(|v| v.as_deref().unwrap_or("(none)"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn bin_note(vs: &[Option<String>]) -> String {
    if vs.is_empty() {
        return String::new();
    }
    format!(
        " ({} only as .bin, which is not used when the folder has .safetensors weights)",
        vs.iter()
            .map(|v| quoted_variant(v.as_deref()))
            .collect::<Vec<_>>()
            .join(", ")
    )
}
