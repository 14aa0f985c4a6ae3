//! `model_index.json`: the pipeline class and its components.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{SelectError, is_plain_name};

/// The pipeline class named by `_class_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PipelineClass {
    /// A diffusers class, e.g. `StableDiffusionPipeline`.
    Builtin(String),
    /// `["my_pipeline", "MyPipeline"]`: class `MyPipeline` in `my_pipeline.py` at the repo root.
    Custom {
        /// The module (file name without `.py`).
        module: String,
        /// The class inside it.
        class: String,
    },
}

/// One component entry of `model_index.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ComponentEntry {
    /// `[library, class]`.
    Present {
        /// `diffusers`, `transformers`, a diffusers pipeline module or a custom module name.
        library: String,
        /// The class name.
        class: String,
    },
    /// `[null, null]`: intentionally absent.
    Absent,
}

/// A parsed `model_index.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelIndex {
    /// `_class_name`, if present.
    pub class_name: Option<PipelineClass>,
    /// Components by name (= folder name).
    pub components: BTreeMap<String, ComponentEntry>,
    /// `_ignore_files`: repo paths to leave out of every selection.
    pub ignore_files: Vec<String>,
    /// The whole document, for writing it back unchanged.
    pub raw: Map<String, Value>,
}

/// Parses `model_index.json`.
///
/// Component names must be plain folder names (no `/`, not `.` or `..`), because they become paths.
pub fn parse_model_index(bytes: &[u8]) -> Result<ModelIndex, SelectError> {
    let invalid = |reason: String| SelectError::InvalidModelIndex {
        reason,
        source: None,
    };
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| SelectError::InvalidModelIndex {
            reason: "not valid JSON".into(),
            source: Some(e),
        })?;
    let Value::Object(raw) = value else {
        return Err(invalid("the top level is not a JSON object".into()));
    };
    let class_name = match raw.get("_class_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(PipelineClass::Builtin(s.clone())),
        Some(Value::Array(items)) => match items.as_slice() {
            [Value::String(module), Value::String(class)] if is_plain_name(module) => {
                Some(PipelineClass::Custom {
                    module: module.clone(),
                    class: class.clone(),
                })
            }
            _ => {
                return Err(invalid(format!(
                    "`_class_name` must be a string or [module, class], found {}",
                    Value::Array(items.clone())
                )));
            }
        },
        Some(other) => {
            return Err(invalid(format!(
                "`_class_name` must be a string or [module, class], found {other}"
            )));
        }
    };
    let ignore_files = match raw.get("_ignore_files") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(format!("`_ignore_files` holds {v}, not a path")))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(invalid(format!(
                "`_ignore_files` must be a list of paths, found {other}"
            )));
        }
    };
    let mut components = BTreeMap::new();
    for (key, value) in &raw {
        if key.starts_with('_') {
            continue;
        }
        let Value::Array(items) = value else { continue };
        let entry = match items.as_slice() {
            [Value::String(library), Value::String(class)] => ComponentEntry::Present {
                library: library.clone(),
                class: class.clone(),
            },
            [Value::Null, Value::Null] => ComponentEntry::Absent,
            _ => {
                return Err(invalid(format!(
                    "component `{key}` must be [library, class] or [null, null], found {value}"
                )));
            }
        };
        if !is_plain_name(key) {
            return Err(invalid(format!(
                "component name `{key}` is not a plain folder name"
            )));
        }
        components.insert(key.clone(), entry);
    }
    Ok(ModelIndex {
        class_name,
        components,
        ignore_files,
        raw,
    })
}
