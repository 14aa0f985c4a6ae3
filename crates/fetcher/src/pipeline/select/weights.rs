//! Weight file names: their formats, variants and shards, and the shard index rewritten for a
//! variant.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

use super::SelectError;

/// Weight file formats that are ever downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum WeightFormat {
    /// `.safetensors`.
    Safetensors,
    /// `.bin` (pickle).
    Bin,
}

impl WeightFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Safetensors => "safetensors",
            Self::Bin => "bin",
        }
    }

    fn from_extension(ext: &str) -> Option<Self> {
        match ext {
            "safetensors" => Some(Self::Safetensors),
            "bin" => Some(Self::Bin),
            _ => None,
        }
    }
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

/// The base names diffusers and transformers give weight files.
pub(super) const WEIGHT_PREFIXES: [&str; 4] = [
    "diffusion_pytorch_model",
    "model",
    "pytorch_model",
    "weights",
];

/// Whether `variant` is a safe variant token: an ASCII letter, then letters, digits, `_` or `-`,
/// not ending in `-`, at most 64 bytes, and not a word the name patterns use (`index`, `json`, …).
pub fn is_valid_variant(variant: &str) -> bool {
    let bytes = variant.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        && !variant.ends_with('-')
        && !matches!(variant, "index" | "json" | "safetensors" | "bin")
        && split_shard_suffix(variant).is_none()
}

/// Which part of a weight set a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WeightPart<'a> {
    /// The whole weights in one file.
    Single,
    /// Shard `index` of `total` (the five-digit strings as written).
    Shard {
        /// `00001`.
        index: &'a str,
        /// `00003`.
        total: &'a str,
    },
    /// The shard index (`*.index.json`).
    Index,
}

/// A weight file name taken apart. Only these shapes are weight names (V = a valid variant):
///
/// | shape | example |
/// |---|---|
/// | `P.F` | `diffusion_pytorch_model.safetensors` |
/// | `P-NNNNN-of-NNNNN.F` | `model-00001-of-00002.safetensors` |
/// | `P.F.index.json` | `model.safetensors.index.json` |
/// | `P.V.F` | `diffusion_pytorch_model.fp16.safetensors` |
/// | `P.V-NNNNN-of-NNNNN.F` | `model.fp16-00001-of-00002.safetensors` |
/// | `P.F.index.V.json` | `model.safetensors.index.fp16.json` |
/// | `P-NNNNN-of-NNNNN.V.F` (legacy) | `diffusion_pytorch_model-00001-of-00002.fp16.safetensors` |
/// | `P.F.V.index.json` (legacy) | `diffusion_pytorch_model.safetensors.fp16.index.json` |
///
/// P is `diffusion_pytorch_model`, `model`, `pytorch_model` or `weights`; F is `safetensors` or
/// `bin`. Diffusers' legacy shard pattern accepts any prefix (`^.*-\d{5}-of-\d{5}\.V\.[a-z]+$`);
/// here the prefix must be one of the four, like every other shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightName<'a> {
    /// The base name (one of the four prefixes).
    pub prefix: &'a str,
    /// The format.
    pub format: WeightFormat,
    /// The variant, if any.
    pub variant: Option<&'a str>,
    /// Single file, shard or index.
    pub part: WeightPart<'a>,
    /// Whether it is spelled in the legacy variant form.
    pub legacy: bool,
}

/// Exactly `NNNNN-of-NNNNN`: returns (index, total).
fn shard_numbers(s: &str) -> Option<(&str, &str)> {
    let (index, total) = s.split_once("-of-")?;
    let five = |d: &str| d.len() == 5 && d.bytes().all(|b| b.is_ascii_digit());
    (five(index) && five(total)).then_some((index, total))
}

/// `-NNNNN-of-NNNNN` at the end of `s`: returns (rest, index, total).
fn split_shard_suffix(s: &str) -> Option<(&str, &str, &str)> {
    let cut = s.len().checked_sub("-00001-of-00002".len())?;
    let (rest, suffix) = (s.get(..cut)?, s.get(cut..)?);
    let (index, total) = shard_numbers(suffix.strip_prefix('-')?)?;
    Some((rest, index, total))
}

impl<'a> WeightName<'a> {
    /// Parses a base name (no folder). `None` when it is not one of the weight shapes.
    pub fn parse(name: &'a str) -> Option<Self> {
        let split = name.find(['.', '-'])?;
        let prefix = &name[..split];
        if !WEIGHT_PREFIXES.contains(&prefix) {
            return None;
        }
        let rest = &name[split..];
        let plain = |format, part| {
            Some(Self {
                prefix,
                format,
                variant: None,
                part,
                legacy: false,
            })
        };
        if let Some(after) = rest.strip_prefix('-') {
            // `P-NNNNN-of-NNNNN.F` or legacy `P-NNNNN-of-NNNNN.V.F`.
            let (shard, tail) = after.split_once('.')?;
            let (index, total) = shard_numbers(shard)?;
            let part = WeightPart::Shard { index, total };
            return match tail.split('.').collect::<Vec<_>>().as_slice() {
                [ext] => plain(WeightFormat::from_extension(ext)?, part),
                [variant, ext] if is_valid_variant(variant) => Some(Self {
                    prefix,
                    format: WeightFormat::from_extension(ext)?,
                    variant: Some(variant),
                    part,
                    legacy: true,
                }),
                _ => None,
            };
        }
        let segments: Vec<&str> = rest[1..].split('.').collect();
        match segments.as_slice() {
            [ext] => plain(WeightFormat::from_extension(ext)?, WeightPart::Single),
            [ext, "index", "json"] => plain(WeightFormat::from_extension(ext)?, WeightPart::Index),
            [ext, "index", variant, "json"] if is_valid_variant(variant) => Some(Self {
                prefix,
                format: WeightFormat::from_extension(ext)?,
                variant: Some(variant),
                part: WeightPart::Index,
                legacy: false,
            }),
            [ext, variant, "index", "json"] if is_valid_variant(variant) => Some(Self {
                prefix,
                format: WeightFormat::from_extension(ext)?,
                variant: Some(variant),
                part: WeightPart::Index,
                legacy: true,
            }),
            [variant_part, ext] => {
                let format = WeightFormat::from_extension(ext)?;
                let (variant, part) = match split_shard_suffix(variant_part) {
                    Some((variant, index, total)) => (variant, WeightPart::Shard { index, total }),
                    None => (*variant_part, WeightPart::Single),
                };
                is_valid_variant(variant).then_some(Self {
                    prefix,
                    format,
                    variant: Some(variant),
                    part,
                    legacy: false,
                })
            }
            _ => None,
        }
    }

    /// The same file's name without its variant: what a loader looks for without `variant=`.
    pub fn canonical(&self) -> String {
        let (prefix, ext) = (self.prefix, self.format.extension());
        match self.part {
            WeightPart::Single => format!("{prefix}.{ext}"),
            WeightPart::Shard { index, total } => format!("{prefix}-{index}-of-{total}.{ext}"),
            WeightPart::Index => format!("{prefix}.{ext}.index.json"),
        }
    }
}

/// The canonical name of a shard (or single weight file) of variant `variant`: the variant is removed
/// from both spellings (`model.fp16-00001-of-00002.safetensors` and legacy
/// `model-00001-of-00002.fp16.safetensors` → `model-00001-of-00002.safetensors`). Names that are
/// not weight names, or carry another variant, are returned unchanged. Idempotent.
pub fn canonical_shard_name(name: &str, variant: Option<&str>) -> String {
    match (WeightName::parse(name), variant) {
        (Some(parsed), Some(v)) if parsed.variant == Some(v) => parsed.canonical(),
        _ => name.to_string(),
    }
}

/// The weight file name a loader looks for first, for a lone weights file (from a URL or a local
/// file) placed into a component folder.
///
/// `diffusers` models load `diffusion_pytorch_model.*`; `transformers` models, and the diffusers
/// pipeline modules whose classes are transformers models (`stable_diffusion`'s safety checker,
/// `deepfloyd_if`, `paint_by_example`, `alt_diffusion`, `kandinsky`, `stable_diffusion_safe`), load
/// `model.safetensors` / `pytorch_model.bin`. Any other library is assumed to be a diffusers model.
pub fn canonical_weights_name(library: &str, format: WeightFormat) -> &'static str {
    let transformers_like = matches!(
        library,
        "transformers"
            | "stable_diffusion"
            | "stable_diffusion_safe"
            | "deepfloyd_if"
            | "paint_by_example"
            | "alt_diffusion"
            | "kandinsky"
    );
    match (transformers_like, format) {
        (false, WeightFormat::Safetensors) => "diffusion_pytorch_model.safetensors",
        (false, WeightFormat::Bin) => "diffusion_pytorch_model.bin",
        (true, WeightFormat::Safetensors) => "model.safetensors",
        (true, WeightFormat::Bin) => "pytorch_model.bin",
    }
}

/// Shard file names (the `weight_map` values) of a shard index.
pub fn shards_from_index(index_json: &[u8]) -> Result<BTreeSet<String>, SelectError> {
    let value: Value =
        serde_json::from_slice(index_json).map_err(|e| SelectError::InvalidShardIndex {
            reason: "not valid JSON".into(),
            source: Some(e),
        })?;
    let map = weight_map(&value)?;
    map.values()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| SelectError::InvalidShardIndex {
                    reason: format!("`weight_map` holds {v}, not a file name"),
                    source: None,
                })
        })
        .collect()
}

fn weight_map(value: &Value) -> Result<&Map<String, Value>, SelectError> {
    value
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| SelectError::InvalidShardIndex {
            reason: "no `weight_map` object".into(),
            source: None,
        })
}

/// The index with every `weight_map` value renamed by [`canonical_shard_name`]; everything else is
/// kept. Written like transformers and diffusers write it (`json.dumps(indent=2, sort_keys=True)`
/// plus a newline), so an index without a variant comes out byte-identical to the original.
pub fn rewrite_index(index_json: &[u8], variant: Option<&str>) -> Result<Vec<u8>, SelectError> {
    let mut value: Value =
        serde_json::from_slice(index_json).map_err(|e| SelectError::InvalidShardIndex {
            reason: "not valid JSON".into(),
            source: Some(e),
        })?;
    weight_map(&value)?;
    if let Some(Value::Object(map)) = value.get_mut("weight_map") {
        for shard in map.values_mut() {
            let Value::String(name) = shard else {
                return Err(SelectError::InvalidShardIndex {
                    reason: format!("`weight_map` holds {shard}, not a file name"),
                    source: None,
                });
            };
            *name = canonical_shard_name(name, variant);
        }
    }
    let mut out =
        serde_json::to_vec_pretty(&sorted(value)).map_err(|e| SelectError::InvalidShardIndex {
            reason: "could not serialise".into(),
            source: Some(e),
        })?;
    out.push(b'\n');
    Ok(out)
}

/// Rebuilds objects with sorted keys, whichever map type serde_json was built with.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let entries: BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_suffix_needs_exactly_five_digits() {
        assert_eq!(
            split_shard_suffix("x-00001-of-00002"),
            Some(("x", "00001", "00002"))
        );
        assert_eq!(
            split_shard_suffix("-00001-of-00002"),
            Some(("", "00001", "00002"))
        );
        assert_eq!(split_shard_suffix("x-0001-of-000002"), None);
        assert_eq!(split_shard_suffix("x-00001-of-0000a"), None);
        assert_eq!(split_shard_suffix("short"), None);
        assert_eq!(split_shard_suffix("ü-00001-of-00002ü"), None);
    }
}
