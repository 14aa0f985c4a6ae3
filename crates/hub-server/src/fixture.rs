//! Builders for repository folders, for tests, benchmarks and the demo.
//!
//! Content is deterministic: the same seed and length always give the same bytes, so a test
//! can recompute expected hashes, and benchmark fixtures are reproducible.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::repo::{GATED_MARKER, RepoKind, valid_segment};

pub mod world;

/// Deterministic pseudo-random bytes, `len` of them, for `seed` (the BLAKE3 XOF of the seed).
///
/// Fast (GB/s) so that gigabytes of fixture are cheap to make.
/// The byte stream does not depend on how it is chunked: `random_bytes(s, n)` is a prefix of
/// `random_bytes(s, n + k)`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    RandomStream::new(seed).fill(&mut out);
    out
}

/// Writes `len` pseudo-random bytes for `seed` to `path` (the same bytes as [`random_bytes`]),
/// in 1 MiB buffers, creating parent folders.
pub fn write_random_file(path: &Path, seed: u64, len: u64) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(Error::io(parent))?;
    }
    let file = fs::File::create(path).map_err(Error::io(path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut stream = RandomStream::new(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        stream.fill(&mut buf[..n]);
        out.write_all(&buf[..n]).map_err(Error::io(path))?;
        left -= n as u64;
    }
    out.flush().map_err(Error::io(path))?;
    Ok(())
}

/// The header that makes `len` bytes a valid safetensors file: 8-byte little-endian header length,
/// then a JSON header describing one `U8` tensor that fills the rest. `None` when `len` is too small
/// to hold a header (the file is then plain random bytes).
fn safetensors_header(len: u64) -> Option<Vec<u8>> {
    // The tensor size depends on the header size and the other way round; two passes settle it.
    let mut header_len = 0u64;
    for _ in 0..3 {
        let data = len.checked_sub(8 + header_len)?;
        let mut json = format!(
            r#"{{"__metadata__":{{"format":"pt"}},"weight":{{"dtype":"U8","shape":[{data}],"data_offsets":[0,{data}]}}}}"#
        );
        while json.len() % 8 != 0 {
            json.push(' ');
        }
        if json.len() as u64 == header_len {
            let mut out = (header_len).to_le_bytes().to_vec();
            out.extend_from_slice(json.as_bytes());
            return Some(out);
        }
        header_len = json.len() as u64;
    }
    None
}

/// Like [`random_bytes`], but a valid safetensors file (one `U8` tensor of random bytes), so that
/// tools that check the format (pipefetch's URL sources, safetensors itself) accept it.
pub fn random_safetensors(seed: u64, len: usize) -> Vec<u8> {
    let mut out = random_bytes(seed, len);
    if let Some(header) = safetensors_header(len as u64) {
        out[..header.len()].copy_from_slice(&header);
    }
    out
}

/// Writes [`random_safetensors`] to `path` without holding it in memory.
pub fn write_safetensors_file(path: &Path, seed: u64, len: u64) -> Result<(), Error> {
    write_random_file(path, seed, len)?;
    if let Some(header) = safetensors_header(len) {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(Error::io(path))?;
        file.write_all(&header).map_err(Error::io(path))?;
    }
    Ok(())
}

/// The BLAKE3 extendable output of the seed: a byte stream, so chunking is invisible, and
/// produced by optimised SIMD code even in debug builds of this crate.
struct RandomStream(blake3::OutputReader);

impl RandomStream {
    fn new(seed: u64) -> RandomStream {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"pipefetch hub-server fixture\0");
        hasher.update(&seed.to_le_bytes());
        RandomStream(hasher.finalize_xof())
    }

    fn fill(&mut self, out: &mut [u8]) {
        self.0.fill(out);
    }
}

enum Content {
    Bytes(Vec<u8>),
    Random { seed: u64, len: u64 },
    Safetensors { seed: u64, len: u64 },
}

/// Builds one repository folder under a server root.
///
/// ```no_run
/// # fn main() -> Result<(), pipefetch_hub_server::Error> {
/// let dir = pipefetch_hub_server::fixture::RepoBuilder::new("/tmp/root", "models", "org/name")
///     .file("unet/config.json", br#"{"a": 1}"#.to_vec())
///     .random_file("unet/diffusion_pytorch_model.safetensors", 7, 4096)
///     .gated()
///     .build()?;
/// # let _ = dir; Ok(()) }
/// ```
pub struct RepoBuilder {
    root: PathBuf,
    kind: String,
    id: String,
    files: Vec<(String, Content)>,
    gated: bool,
}

impl RepoBuilder {
    /// A repo `id` (`ORG/NAME`) of type `kind` (`"models"` or `"datasets"`) under `root`.
    pub fn new(root: impl Into<PathBuf>, kind: &str, id: &str) -> RepoBuilder {
        RepoBuilder {
            root: root.into(),
            kind: kind.to_owned(),
            id: id.to_owned(),
            files: Vec::new(),
            gated: false,
        }
    }

    /// Adds a file with these bytes (`path` uses `/`).
    pub fn file(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> RepoBuilder {
        self.files
            .push((path.to_owned(), Content::Bytes(bytes.into())));
        self
    }

    /// Adds a valid safetensors file of `len` bytes ([`random_safetensors`]).
    pub fn safetensors_file(mut self, path: &str, seed: u64, len: u64) -> RepoBuilder {
        self.files
            .push((path.to_owned(), Content::Safetensors { seed, len }));
        self
    }

    /// Adds a file of `len` pseudo-random bytes from `seed`, written without holding it in memory.
    pub fn random_file(mut self, path: &str, seed: u64, len: u64) -> RepoBuilder {
        self.files
            .push((path.to_owned(), Content::Random { seed, len }));
        self
    }

    /// Marks the repo gated: downloads then need the server's token.
    pub fn gated(mut self) -> RepoBuilder {
        self.gated = true;
        self
    }

    /// Writes the folder (adding to whatever is there) and returns its path.
    pub fn build(self) -> Result<PathBuf, Error> {
        let dir = repo_dir(&self.root, &self.kind, &self.id)?;
        fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        for (path, content) in &self.files {
            if !path.split('/').all(valid_segment) || path == GATED_MARKER {
                return Err(Error::InvalidFilePath {
                    id: self.id.clone(),
                    path: path.clone(),
                });
            }
            let target = dir.join(path);
            match content {
                Content::Bytes(bytes) => {
                    if let Some(parent) = target.parent() {
                        fs::create_dir_all(parent).map_err(Error::io(parent))?;
                    }
                    fs::write(&target, bytes).map_err(Error::io(&target))?;
                }
                Content::Random { seed, len } => write_random_file(&target, *seed, *len)?,
                Content::Safetensors { seed, len } => write_safetensors_file(&target, *seed, *len)?,
            }
        }
        if self.gated {
            let marker = dir.join(GATED_MARKER);
            fs::write(&marker, b"").map_err(Error::io(&marker))?;
        }
        Ok(dir)
    }
}

/// The folder of repo `id` of type `kind` under `root`, after validating both.
pub(crate) fn repo_dir(root: &Path, kind: &str, id: &str) -> Result<PathBuf, Error> {
    let invalid = || Error::InvalidRepoId { id: id.to_owned() };
    let kind = RepoKind::from_plural(kind).ok_or_else(invalid)?;
    match id.split('/').collect::<Vec<_>>().as_slice() {
        [org, name] if valid_segment(org) && valid_segment(name) => {
            Ok(root.join(kind.plural()).join(org).join(name))
        }
        _ => Err(invalid()),
    }
}

/// Relative weight sizes, from the real `stable-diffusion-v1-5` repo (MB): the share of
/// `weights_scale` each weight file gets.
const SD_WEIGHTS: &[(&str, u64)] = &[
    ("unet/diffusion_pytorch_model.safetensors", 3438),
    ("unet/diffusion_pytorch_model.fp16.safetensors", 1719),
    ("text_encoder/model.safetensors", 492),
    ("text_encoder/model.fp16.safetensors", 246),
    ("vae/diffusion_pytorch_model.safetensors", 335),
    ("vae/diffusion_pytorch_model.fp16.safetensors", 167),
    ("vae/diffusion_pytorch_model.bin", 335),
    ("vae/diffusion_pytorch_model.fp16.bin", 167),
    ("safety_checker/model.safetensors", 1216),
    ("safety_checker/model.fp16.safetensors", 608),
    ("v1-5-pruned.safetensors", 4265),
];

/// Smallest weight file, so even a tiny scale gives distinct non-empty files.
const MIN_WEIGHT: u64 = 64;

/// Writes a Stable-Diffusion-shaped model repo `id` under `root` and returns its folder.
///
/// Layout: `model_index.json` (a `StableDiffusionPipeline` with unet, vae, text_encoder,
/// tokenizer, scheduler, safety_checker, feature_extractor), a `config.json` per model
/// component, fp32 and fp16 `.safetensors` weights for unet, vae, text_encoder and
/// safety_checker, `.bin` twins in `vae/`, tokenizer files, the scheduler config, the feature
/// extractor config, a root single-file checkpoint `v1-5-pruned.safetensors`, `README.md` and
/// `.gitattributes`.
///
/// Weight sizes keep the real repo's proportions and add up to about `weights_scale` bytes
/// (each at least 64 bytes): with 2 GB, unet is about 536 MB fp32 and 268 MB fp16, text_encoder
/// 77 MB, vae 52 MB, and the root checkpoint 665 MB. Weights are pseudo-random bytes, one seed
/// per file.
pub fn sd_like(root: &Path, id: &str, weights_scale: u64) -> Result<PathBuf, Error> {
    sd_repo(root, id, weights_scale, |_| true)
}

/// Writes only the files a pipeline spec `repo_id: <id>` pulls from an [`sd_like`] repo: the
/// text files and the full-precision `.safetensors` of unet, text_encoder, vae and
/// safety_checker, whose sizes keep their proportions and add up to about `pipeline_bytes`; no
/// decoy (fp16 and `.bin` twins, the root checkpoint). For benchmarks that pull one pipeline many
/// times over (`cargo xtask bench fleet`), where the decoys would only take disk.
pub fn sd_pipeline(root: &Path, id: &str, pipeline_bytes: u64) -> Result<PathBuf, Error> {
    sd_repo(root, id, pipeline_bytes, |path| {
        path.contains('/') && path.ends_with(".safetensors") && !path.contains(".fp16.")
    })
}

/// An [`sd_like`] repo with only the weights `keep` accepts, scaled to add up to `weights_scale`
/// bytes.
/// A weight file has the same seed whichever others are kept.
fn sd_repo(
    root: &Path,
    id: &str,
    weights_scale: u64,
    keep: impl Fn(&str) -> bool,
) -> Result<PathBuf, Error> {
    let kept = || {
        SD_WEIGHTS
            .iter()
            .enumerate()
            .filter(|(_, (path, _))| keep(path))
    };
    let total: u64 = kept().map(|(_, (_, w))| w).sum::<u64>().max(1);
    let mut builder = RepoBuilder::new(root, "models", id);
    for (seed, (path, weight)) in kept() {
        let len = (u128::from(weights_scale) * u128::from(*weight) / u128::from(total)) as u64;
        // Weights in safetensors format are valid safetensors files (random tensor bytes), so
        // format checks downstream accept them like real weights.
        builder = if path.ends_with(".safetensors") {
            builder.safetensors_file(path, seed as u64 + 1, len.max(MIN_WEIGHT))
        } else {
            builder.random_file(path, seed as u64 + 1, len.max(MIN_WEIGHT))
        };
    }
    for (path, text) in sd_text_files() {
        builder = builder.file(path, text.into_bytes());
    }
    builder.build()
}

fn sd_text_files() -> Vec<(&'static str, String)> {
    let model_index = r#"{
  "_class_name": "StableDiffusionPipeline",
  "_diffusers_version": "0.6.0",
  "feature_extractor": ["transformers", "CLIPImageProcessor"],
  "requires_safety_checker": true,
  "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
  "scheduler": ["diffusers", "PNDMScheduler"],
  "text_encoder": ["transformers", "CLIPTextModel"],
  "tokenizer": ["transformers", "CLIPTokenizer"],
  "unet": ["diffusers", "UNet2DConditionModel"],
  "vae": ["diffusers", "AutoencoderKL"]
}
"#;
    let unet = r#"{
  "_class_name": "UNet2DConditionModel",
  "_diffusers_version": "0.6.0",
  "act_fn": "silu",
  "attention_head_dim": 8,
  "block_out_channels": [320, 640, 1280, 1280],
  "center_input_sample": false,
  "cross_attention_dim": 768,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "downsample_padding": 1,
  "flip_sin_to_cos": true,
  "freq_shift": 0,
  "in_channels": 4,
  "layers_per_block": 2,
  "mid_block_scale_factor": 1,
  "norm_eps": 1e-05,
  "norm_num_groups": 32,
  "out_channels": 4,
  "sample_size": 64,
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
}
"#;
    let vae = r#"{
  "_class_name": "AutoencoderKL",
  "_diffusers_version": "0.6.0",
  "act_fn": "silu",
  "block_out_channels": [128, 256, 512, 512],
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "in_channels": 3,
  "latent_channels": 4,
  "layers_per_block": 2,
  "norm_num_groups": 32,
  "out_channels": 3,
  "sample_size": 512,
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
}
"#;
    let text_encoder = r#"{
  "architectures": ["CLIPTextModel"],
  "attention_dropout": 0.0,
  "bos_token_id": 0,
  "eos_token_id": 2,
  "hidden_act": "quick_gelu",
  "hidden_size": 768,
  "intermediate_size": 3072,
  "max_position_embeddings": 77,
  "model_type": "clip_text_model",
  "num_attention_heads": 12,
  "num_hidden_layers": 12,
  "pad_token_id": 1,
  "projection_dim": 768,
  "torch_dtype": "float32",
  "transformers_version": "4.22.0.dev0",
  "vocab_size": 49408
}
"#;
    let safety = r#"{
  "_name_or_path": "CompVis/stable-diffusion-safety-checker",
  "architectures": ["StableDiffusionSafetyChecker"],
  "initializer_factor": 1.0,
  "logit_scale_init_value": 2.6592,
  "model_type": "clip",
  "projection_dim": 768,
  "torch_dtype": "float32",
  "transformers_version": null
}
"#;
    let scheduler = r#"{
  "_class_name": "PNDMScheduler",
  "_diffusers_version": "0.6.0",
  "beta_end": 0.012,
  "beta_schedule": "scaled_linear",
  "beta_start": 0.00085,
  "num_train_timesteps": 1000,
  "set_alpha_to_one": false,
  "skip_prk_steps": true,
  "steps_offset": 1,
  "trained_betas": null
}
"#;
    let feature_extractor = r#"{
  "crop_size": 224,
  "do_center_crop": true,
  "do_convert_rgb": true,
  "do_normalize": true,
  "do_resize": true,
  "feature_extractor_type": "CLIPFeatureExtractor",
  "image_mean": [0.48145466, 0.4578275, 0.40821073],
  "image_std": [0.26862954, 0.26130258, 0.27577711],
  "resample": 3,
  "size": 224
}
"#;
    let tokenizer_config = r#"{
  "add_prefix_space": false,
  "bos_token": "<|startoftext|>",
  "do_lower_case": true,
  "eos_token": "<|endoftext|>",
  "errors": "replace",
  "model_max_length": 77,
  "pad_token": "<|endoftext|>",
  "tokenizer_class": "CLIPTokenizer",
  "unk_token": "<|endoftext|>"
}
"#;
    let special_tokens = r#"{
  "bos_token": "<|startoftext|>",
  "eos_token": "<|endoftext|>",
  "pad_token": "<|endoftext|>",
  "unk_token": "<|endoftext|>"
}
"#;
    let vocab = r#"{"!": 0, "\"": 1, "a</w>": 320, "photo</w>": 1125, "<|startoftext|>": 49406, "<|endoftext|>": 49407}
"#;
    let merges = "#version: 0.2\ni n\nt h\na n\nr e\nth e</w>\n";
    let readme = "---\nlicense: creativeml-openrail-m\ntags:\n- stable-diffusion\n- text-to-image\n---\n\n# A Stable-Diffusion-shaped test repository\n\nThe weights are pseudo-random bytes.\n";
    let gitattributes = "*.bin filter=lfs diff=lfs merge=lfs -text\n*.ckpt filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.pt filter=lfs diff=lfs merge=lfs -text\n";
    vec![
        ("model_index.json", model_index.to_owned()),
        ("unet/config.json", unet.to_owned()),
        ("vae/config.json", vae.to_owned()),
        ("text_encoder/config.json", text_encoder.to_owned()),
        ("safety_checker/config.json", safety.to_owned()),
        ("scheduler/scheduler_config.json", scheduler.to_owned()),
        (
            "feature_extractor/preprocessor_config.json",
            feature_extractor.to_owned(),
        ),
        (
            "tokenizer/tokenizer_config.json",
            tokenizer_config.to_owned(),
        ),
        (
            "tokenizer/special_tokens_map.json",
            special_tokens.to_owned(),
        ),
        ("tokenizer/vocab.json", vocab.to_owned()),
        ("tokenizer/merges.txt", merges.to_owned()),
        ("README.md", readme.to_owned()),
        (".gitattributes", gitattributes.to_owned()),
    ]
}

#[cfg(test)]
mod safetensors_tests {
    use super::*;

    #[test]
    fn random_safetensors_have_a_valid_header_and_exact_length() {
        for len in [200usize, 4096, 1 << 20] {
            let bytes = random_safetensors(3, len);
            assert_eq!(bytes.len(), len);
            let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default()) as usize;
            let header: serde_json::Value =
                serde_json::from_slice(&bytes[8..8 + header_len]).unwrap_or_default();
            let end = header["weight"]["data_offsets"][1].as_u64().unwrap_or(0) as usize;
            assert_eq!(8 + header_len + end, len);
        }
        // Too small for a header: plain random bytes.
        assert_eq!(random_safetensors(3, 20), random_bytes(3, 20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_is_deterministic_and_chunking_invariant() {
        let a = random_bytes(3, 1000);
        assert_eq!(a, random_bytes(3, 1000));
        assert_ne!(a, random_bytes(4, 1000));
        assert_eq!(&random_bytes(3, 13)[..], &a[..13]);
        let mut s = RandomStream::new(3);
        let mut b = vec![0u8; 1000];
        let (x, y) = b.split_at_mut(5);
        s.fill(x);
        let (y1, y2) = y.split_at_mut(11);
        s.fill(y1);
        s.fill(y2);
        assert_eq!(a, b);
    }

    #[test]
    fn write_random_file_matches_random_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x/y.bin");
        write_random_file(&p, 9, (1 << 20) + 77).unwrap();
        assert_eq!(fs::read(&p).unwrap(), random_bytes(9, (1 << 20) + 77));
    }

    #[test]
    fn repo_ids_are_validated() {
        let root = Path::new("/r");
        assert!(repo_dir(root, "models", "a/b").is_ok());
        assert!(repo_dir(root, "models", "a").is_err());
        assert!(repo_dir(root, "models", "../b").is_err());
        assert!(repo_dir(root, "spaces", "a/b").is_err());
    }
}
