//! File selection for diffusers pipelines over realistic repo listings (file names as the Hub lists
//! them for the real repos): exact file lists, canonical names, error messages and index bytes.

use std::collections::{BTreeMap, BTreeSet};

use pipefetch_fetcher::pipeline::select::{
    ComponentKind, ComponentSelection, FileRole, Listing, ModelIndex, PipelineClass,
    PipelineSelection, SelectError, SelectOptions, WeightFormat, WeightName, WeightPart,
    canonical_shard_name, canonical_weights_name, is_valid_variant, parse_model_index,
    rewrite_index, select_component, select_pipeline, shards_from_index,
};
use proptest::prelude::*;

/// A listing whose sizes are the path length and whose etags are `etag:<path>`.
fn listing(paths: &str) -> Listing {
    paths
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|p| (p.to_string(), p.len() as u64, format!("etag:{p}")))
        .collect()
}

fn index(json: &str) -> ModelIndex {
    parse_model_index(json.as_bytes()).expect("valid model_index.json")
}

fn options(variant: Option<&str>) -> SelectOptions {
    SelectOptions {
        variant: variant.map(str::to_string),
        ..SelectOptions::default()
    }
}

/// `(repo path, target)` of every file of a component, index first when there is one.
fn pairs(c: &ComponentSelection) -> Vec<(String, String)> {
    c.index
        .iter()
        .chain(&c.files)
        .map(|f| (f.repo_path.clone(), f.target.clone()))
        .collect()
}

fn owned(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn component<'a>(s: &'a PipelineSelection, name: &str) -> &'a ComponentSelection {
    s.components
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no component {name}"))
}

fn messages(errors: Vec<SelectError>) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

fn select(l: &Listing, i: &ModelIndex, o: &SelectOptions) -> PipelineSelection {
    select_pipeline(l, i, o).unwrap_or_else(|e| panic!("selection failed: {:?}", messages(e)))
}

fn model(variant: Option<&str>, format: WeightFormat, sharded: bool) -> ComponentKind {
    ComponentKind::Model {
        variant: variant.map(str::to_string),
        format,
        sharded,
    }
}

const SD15_INDEX: &str = r#"{
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
}"#;

const SD15_FILES: &str = "
.gitattributes
README.md
model_index.json
v1-5-pruned-emaonly.ckpt
v1-5-pruned-emaonly.safetensors
v1-5-pruned.ckpt
v1-5-pruned.safetensors
feature_extractor/preprocessor_config.json
safety_checker/config.json
safety_checker/model.fp16.safetensors
safety_checker/model.safetensors
safety_checker/pytorch_model.bin
safety_checker/pytorch_model.fp16.bin
safety_checker/flax_model.msgpack
scheduler/scheduler_config.json
text_encoder/config.json
text_encoder/model.fp16.safetensors
text_encoder/model.safetensors
text_encoder/pytorch_model.bin
text_encoder/pytorch_model.fp16.bin
text_encoder/flax_model.msgpack
tokenizer/merges.txt
tokenizer/special_tokens_map.json
tokenizer/tokenizer_config.json
tokenizer/vocab.json
unet/config.json
unet/diffusion_flax_model.msgpack
unet/diffusion_pytorch_model.bin
unet/diffusion_pytorch_model.fp16.bin
unet/diffusion_pytorch_model.fp16.safetensors
unet/diffusion_pytorch_model.non_ema.bin
unet/diffusion_pytorch_model.non_ema.safetensors
unet/diffusion_pytorch_model.safetensors
vae/config.json
vae/diffusion_flax_model.msgpack
vae/diffusion_pytorch_model.bin
vae/diffusion_pytorch_model.fp16.bin
vae/diffusion_pytorch_model.fp16.safetensors
vae/diffusion_pytorch_model.safetensors
onnx/model_index.json
onnx/unet/model.onnx
onnx/unet/weights.pb
onnx/vae_decoder/model.onnx
";

#[test]
fn sd15_plain_takes_safetensors_only_from_component_folders() {
    let s = select(&listing(SD15_FILES), &index(SD15_INDEX), &options(None));
    let names: Vec<&str> = s.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "feature_extractor",
            "safety_checker",
            "scheduler",
            "text_encoder",
            "tokenizer",
            "unet",
            "vae"
        ]
    );
    let root: Vec<&str> = s.root_files.iter().map(|f| f.repo_path.as_str()).collect();
    assert_eq!(root, ["model_index.json"]);
    assert_eq!(
        pairs(component(&s, "feature_extractor")),
        owned(&[(
            "feature_extractor/preprocessor_config.json",
            "preprocessor_config.json"
        )])
    );
    assert_eq!(
        pairs(component(&s, "safety_checker")),
        owned(&[
            ("safety_checker/config.json", "config.json"),
            ("safety_checker/model.safetensors", "model.safetensors"),
        ])
    );
    assert_eq!(
        pairs(component(&s, "text_encoder")),
        owned(&[
            ("text_encoder/config.json", "config.json"),
            ("text_encoder/model.safetensors", "model.safetensors"),
        ])
    );
    assert_eq!(
        pairs(component(&s, "tokenizer")),
        owned(&[
            ("tokenizer/merges.txt", "merges.txt"),
            (
                "tokenizer/special_tokens_map.json",
                "special_tokens_map.json"
            ),
            ("tokenizer/tokenizer_config.json", "tokenizer_config.json"),
            ("tokenizer/vocab.json", "vocab.json"),
        ])
    );
    let unet = component(&s, "unet");
    assert_eq!(unet.kind, model(None, WeightFormat::Safetensors, false));
    assert_eq!(
        pairs(unet),
        owned(&[
            ("unet/config.json", "config.json"),
            (
                "unet/diffusion_pytorch_model.safetensors",
                "diffusion_pytorch_model.safetensors"
            ),
        ])
    );
    let roles: Vec<FileRole> = unet.files.iter().map(|f| f.role).collect();
    assert_eq!(roles, [FileRole::Config, FileRole::Weights]);
    assert_eq!(
        unet.files[1].size,
        "unet/diffusion_pytorch_model.safetensors".len() as u64
    );
    assert_eq!(
        unet.files[1].etag,
        "etag:unet/diffusion_pytorch_model.safetensors"
    );
    assert_eq!(component(&s, "scheduler").kind, ComponentKind::WholeFolder);
    let total: usize = s.components.iter().map(|c| c.files.len()).sum();
    assert_eq!(total, 14);
}

#[test]
fn sd15_fp16_renames_variant_files_to_plain_names() {
    let s = select(
        &listing(SD15_FILES),
        &index(SD15_INDEX),
        &options(Some("fp16")),
    );
    let weights: Vec<(String, String)> = s
        .components
        .iter()
        .flat_map(|c| c.files.iter().filter(|f| f.role == FileRole::Weights))
        .map(|f| (f.repo_path.clone(), f.target.clone()))
        .collect();
    assert_eq!(
        weights,
        owned(&[
            ("safety_checker/model.fp16.safetensors", "model.safetensors"),
            ("text_encoder/model.fp16.safetensors", "model.safetensors"),
            (
                "unet/diffusion_pytorch_model.fp16.safetensors",
                "diffusion_pytorch_model.safetensors"
            ),
            (
                "vae/diffusion_pytorch_model.fp16.safetensors",
                "diffusion_pytorch_model.safetensors"
            ),
        ])
    );
    assert_eq!(
        component(&s, "vae").kind,
        model(Some("fp16"), WeightFormat::Safetensors, false)
    );
}

#[test]
fn per_component_preferences_take_the_first_variant_that_exists() {
    let mut o = options(Some("fp16"));
    o.component_variants.insert(
        "unet".into(),
        vec![Some("bf16".into()), Some("non_ema".into()), None],
    );
    let s = select(&listing(SD15_FILES), &index(SD15_INDEX), &o);
    assert_eq!(
        pairs(component(&s, "unet")),
        owned(&[
            ("unet/config.json", "config.json"),
            (
                "unet/diffusion_pytorch_model.non_ema.safetensors",
                "diffusion_pytorch_model.safetensors"
            ),
        ])
    );
    assert_eq!(
        component(&s, "text_encoder").kind,
        model(Some("fp16"), WeightFormat::Safetensors, false)
    );
}

#[test]
fn a_missing_preferred_variant_names_what_exists() {
    let l = listing(SD15_FILES);
    let err = select_component(
        &l,
        "text_encoder",
        "text_encoder",
        "transformers",
        &[Some("bf16".into())],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"text_encoder: variant "bf16" not found; available: fp16, (none)"#
    );
    assert_eq!(
        err.hint().as_deref(),
        Some("set `variant: fp16` for `text_encoder`")
    );

    let err = select_component(
        &l,
        "unet",
        "unet",
        "diffusers",
        &[Some("bf16".into()), Some("fp8".into())],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"unet: variant "bf16" or "fp8" not found; available: fp16, non_ema, (none)"#
    );
}

#[test]
fn skipped_and_absent_components_are_not_selected() {
    let json = SD15_INDEX.replace(
        r#""safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"]"#,
        r#""safety_checker": [null, null]"#,
    );
    let mut o = options(None);
    o.skip = BTreeSet::from(["unet".to_string(), "vae".to_string()]);
    let s = select(&listing(SD15_FILES), &index(&json), &o);
    let names: Vec<&str> = s.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "feature_extractor",
            "scheduler",
            "text_encoder",
            "tokenizer"
        ]
    );
}

const SDXL_INDEX: &str = r#"{
  "_class_name": "StableDiffusionXLPipeline",
  "_diffusers_version": "0.19.0.dev0",
  "force_zeros_for_empty_prompt": true,
  "add_watermarker": null,
  "scheduler": ["diffusers", "EulerDiscreteScheduler"],
  "text_encoder": ["transformers", "CLIPTextModel"],
  "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
  "tokenizer": ["transformers", "CLIPTokenizer"],
  "tokenizer_2": ["transformers", "CLIPTokenizer"],
  "unet": ["diffusers", "UNet2DConditionModel"],
  "vae": ["diffusers", "AutoencoderKL"]
}"#;

const SDXL_FILES: &str = "
.gitattributes
01.png
LICENSE.md
README.md
model_index.json
sd_xl_base_1.0.safetensors
sd_xl_base_1.0_0.9vae.safetensors
sd_xl_offset_example-lora_1.0.safetensors
scheduler/scheduler_config.json
text_encoder/config.json
text_encoder/flax_model.msgpack
text_encoder/model.fp16.safetensors
text_encoder/model.onnx
text_encoder/model.safetensors
text_encoder/openvino_model.bin
text_encoder/openvino_model.xml
text_encoder_2/config.json
text_encoder_2/flax_model.msgpack
text_encoder_2/model.fp16.safetensors
text_encoder_2/model.onnx
text_encoder_2/model.onnx_data
text_encoder_2/model.safetensors
text_encoder_2/openvino_model.bin
text_encoder_2/openvino_model.xml
tokenizer/merges.txt
tokenizer/special_tokens_map.json
tokenizer/tokenizer_config.json
tokenizer/vocab.json
tokenizer/openvino_tokenizer.bin
tokenizer/openvino_tokenizer.xml
tokenizer_2/merges.txt
tokenizer_2/special_tokens_map.json
tokenizer_2/tokenizer_config.json
tokenizer_2/vocab.json
unet/config.json
unet/diffusion_flax_model.msgpack
unet/diffusion_pytorch_model.fp16.safetensors
unet/diffusion_pytorch_model.safetensors
unet/model.onnx
unet/model.onnx_data
unet/openvino_model.bin
unet/openvino_model.xml
vae/config.json
vae/diffusion_flax_model.msgpack
vae/diffusion_pytorch_model.fp16.safetensors
vae/diffusion_pytorch_model.safetensors
vae_1_0/config.json
vae_1_0/diffusion_pytorch_model.fp16.safetensors
vae_1_0/diffusion_pytorch_model.safetensors
vae_decoder/config.json
vae_decoder/model.onnx
vae_decoder/openvino_model.bin
vae_decoder/openvino_model.xml
vae_encoder/config.json
vae_encoder/model.onnx
";

#[test]
fn sdxl_fp16_skips_root_checkpoints_vae_1_0_onnx_and_openvino() {
    let s = select(
        &listing(SDXL_FILES),
        &index(SDXL_INDEX),
        &options(Some("fp16")),
    );
    let all: Vec<String> = s
        .root_files
        .iter()
        .chain(s.components.iter().flat_map(|c| &c.files))
        .map(|f| f.repo_path.clone())
        .collect();
    assert_eq!(
        all,
        [
            "model_index.json",
            "scheduler/scheduler_config.json",
            "text_encoder/config.json",
            "text_encoder/model.fp16.safetensors",
            "text_encoder_2/config.json",
            "text_encoder_2/model.fp16.safetensors",
            "tokenizer/merges.txt",
            "tokenizer/special_tokens_map.json",
            "tokenizer/tokenizer_config.json",
            "tokenizer/vocab.json",
            "tokenizer_2/merges.txt",
            "tokenizer_2/special_tokens_map.json",
            "tokenizer_2/tokenizer_config.json",
            "tokenizer_2/vocab.json",
            "unet/config.json",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "vae/config.json",
            "vae/diffusion_pytorch_model.fp16.safetensors",
        ]
    );
    assert_eq!(
        pairs(component(&s, "text_encoder_2")),
        owned(&[
            ("text_encoder_2/config.json", "config.json"),
            ("text_encoder_2/model.fp16.safetensors", "model.safetensors"),
        ])
    );
}

#[test]
fn a_pipeline_variant_no_folder_has_is_an_error() {
    let errors = select_pipeline(
        &listing(SDXL_FILES),
        &index(SDXL_INDEX),
        &options(Some("bf16")),
    )
    .unwrap_err();
    assert_eq!(
        messages(errors),
        [
            r#"variant "bf16" is not available in any model folder of the pipeline (text_encoder, text_encoder_2, unet, vae); variants found: fp16, (none)"#
        ]
    );
}

const FLUX_INDEX: &str = r#"{
  "_class_name": "FluxPipeline",
  "_diffusers_version": "0.30.0.dev0",
  "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
  "text_encoder": ["transformers", "CLIPTextModel"],
  "text_encoder_2": ["transformers", "T5EncoderModel"],
  "tokenizer": ["transformers", "CLIPTokenizer"],
  "tokenizer_2": ["transformers", "T5TokenizerFast"],
  "transformer": ["diffusers", "FluxTransformer2DModel"],
  "vae": ["diffusers", "AutoencoderKL"]
}"#;

const FLUX_FILES: &str = "
.gitattributes
LICENSE.md
README.md
ae.safetensors
flux1-schnell.safetensors
model_index.json
schnell_grid.jpeg
scheduler/scheduler_config.json
text_encoder/config.json
text_encoder/model.safetensors
text_encoder_2/config.json
text_encoder_2/model-00001-of-00002.safetensors
text_encoder_2/model-00002-of-00002.safetensors
text_encoder_2/model.safetensors.index.json
tokenizer/merges.txt
tokenizer/special_tokens_map.json
tokenizer/tokenizer_config.json
tokenizer/vocab.json
tokenizer_2/special_tokens_map.json
tokenizer_2/spiece.model
tokenizer_2/tokenizer.json
tokenizer_2/tokenizer_config.json
transformer/config.json
transformer/diffusion_pytorch_model-00001-of-00003.safetensors
transformer/diffusion_pytorch_model-00002-of-00003.safetensors
transformer/diffusion_pytorch_model-00003-of-00003.safetensors
transformer/diffusion_pytorch_model.safetensors.index.json
vae/config.json
vae/diffusion_pytorch_model.safetensors
";

/// The shape transformers and diffusers write: sorted keys, two-space indent, a final newline.
const FLUX_TRANSFORMER_INDEX: &str = r#"{
  "metadata": {
    "total_size": 23782357120
  },
  "weight_map": {
    "context_embedder.bias": "diffusion_pytorch_model-00001-of-00003.safetensors",
    "single_transformer_blocks.0.attn.norm_k.weight": "diffusion_pytorch_model-00002-of-00003.safetensors",
    "transformer_blocks.0.attn.add_k_proj.bias": "diffusion_pytorch_model-00001-of-00003.safetensors",
    "x_embedder.weight": "diffusion_pytorch_model-00003-of-00003.safetensors"
  }
}
"#;

#[test]
fn flux_sharded_components_get_index_then_shards() {
    let l = listing(FLUX_FILES);
    let mut s = select(&l, &index(FLUX_INDEX), &options(None));
    assert_eq!(
        pairs(component(&s, "tokenizer_2")),
        owned(&[
            (
                "tokenizer_2/special_tokens_map.json",
                "special_tokens_map.json"
            ),
            ("tokenizer_2/spiece.model", "spiece.model"),
            ("tokenizer_2/tokenizer.json", "tokenizer.json"),
            ("tokenizer_2/tokenizer_config.json", "tokenizer_config.json"),
        ])
    );
    let transformer = s
        .components
        .iter_mut()
        .find(|c| c.name == "transformer")
        .expect("transformer");
    assert_eq!(
        transformer.kind,
        model(None, WeightFormat::Safetensors, true)
    );
    assert_eq!(
        pairs(transformer),
        owned(&[
            (
                "transformer/diffusion_pytorch_model.safetensors.index.json",
                "diffusion_pytorch_model.safetensors.index.json"
            ),
            ("transformer/config.json", "config.json"),
        ])
    );
    let shards = shards_from_index(FLUX_TRANSFORMER_INDEX.as_bytes()).unwrap();
    assert_eq!(shards.len(), 3);
    transformer.add_shards(&l, &shards).unwrap();
    assert_eq!(
        pairs(transformer),
        owned(&[
            (
                "transformer/diffusion_pytorch_model.safetensors.index.json",
                "diffusion_pytorch_model.safetensors.index.json"
            ),
            ("transformer/config.json", "config.json"),
            (
                "transformer/diffusion_pytorch_model-00001-of-00003.safetensors",
                "diffusion_pytorch_model-00001-of-00003.safetensors"
            ),
            (
                "transformer/diffusion_pytorch_model-00002-of-00003.safetensors",
                "diffusion_pytorch_model-00002-of-00003.safetensors"
            ),
            (
                "transformer/diffusion_pytorch_model-00003-of-00003.safetensors",
                "diffusion_pytorch_model-00003-of-00003.safetensors"
            ),
        ])
    );
    // Without a variant the rewritten index is byte-identical to what the Hub serves.
    assert_eq!(
        rewrite_index(FLUX_TRANSFORMER_INDEX.as_bytes(), None).unwrap(),
        FLUX_TRANSFORMER_INDEX.as_bytes()
    );

    let t5 = component(&s, "text_encoder_2");
    assert_eq!(
        t5.index.as_ref().map(|f| f.target.as_str()),
        Some("model.safetensors.index.json")
    );
    let mut t5 = t5.clone();
    let err = t5
        .add_shards(
            &l,
            &BTreeSet::from([
                "model-00001-of-00002.safetensors".to_string(),
                "model-00002-of-00002.safetensors".to_string(),
                "model-00003-of-00003.safetensors".to_string(),
            ]),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "component `text_encoder_2`: shard index `text_encoder_2/model.safetensors.index.json` names files the repo does not have: model-00003-of-00003.safetensors"
    );
    assert_eq!(t5.files.len(), 1, "a failed add_shards changes nothing");
    let err = t5
        .add_shards(
            &l,
            &BTreeSet::from(["../vae/diffusion_pytorch_model.safetensors".to_string()]),
        )
        .unwrap_err();
    assert!(matches!(err, SelectError::InvalidShardName { .. }), "{err}");
    let mut vae = component(&s, "vae").clone();
    assert!(matches!(
        vae.add_shards(&l, &BTreeSet::new()),
        Err(SelectError::NotSharded { .. })
    ));
}

const BROKEN_VARIANTS_FILES: &str = "
model_index.json
feature_extractor/preprocessor_config.json
scheduler/scheduler_config.json
text_encoder/config.json
text_encoder/model.fp16.safetensors
tokenizer/merges.txt
tokenizer/special_tokens_map.json
tokenizer/tokenizer_config.json
tokenizer/vocab.json
unet/config.json
unet/diffusion_pytorch_model.fp16.safetensors
unet/diffusion_pytorch_model.safetensors
vae/config.json
vae/diffusion_pytorch_model.fp16.safetensors
vae/diffusion_pytorch_model.safetensors
";

const BROKEN_VARIANTS_INDEX: &str = r#"{
  "_class_name": "StableDiffusionPipeline",
  "feature_extractor": ["transformers", "CLIPImageProcessor"],
  "safety_checker": [null, null],
  "scheduler": ["diffusers", "PNDMScheduler"],
  "text_encoder": ["transformers", "CLIPTextModel"],
  "tokenizer": ["transformers", "CLIPTokenizer"],
  "unet": ["diffusers", "UNet2DConditionModel"],
  "vae": ["diffusers", "AutoencoderKL"]
}"#;

#[test]
fn an_fp16_only_folder_without_variant_is_a_clear_error_not_a_bin_fallback() {
    let l = listing(BROKEN_VARIANTS_FILES);
    let i = index(BROKEN_VARIANTS_INDEX);
    let errors = select_pipeline(&l, &i, &options(None)).unwrap_err();
    assert_eq!(
        errors[0].hint().as_deref(),
        Some("set `variant: fp16` for `text_encoder`")
    );
    assert_eq!(
        messages(errors),
        ["text_encoder: variant (none) not found; available: fp16"]
    );

    // With the variant, every model folder takes fp16.
    let s = select(&l, &i, &options(Some("fp16")));
    for name in ["text_encoder", "unet", "vae"] {
        assert_eq!(
            component(&s, name).kind,
            model(Some("fp16"), WeightFormat::Safetensors, false)
        );
    }

    // Or only the fp16-only folder, the others keeping full precision.
    let mut o = options(None);
    o.component_variants
        .insert("text_encoder".into(), vec![Some("fp16".into())]);
    let s = select(&l, &i, &o);
    assert_eq!(
        component(&s, "text_encoder").kind,
        model(Some("fp16"), WeightFormat::Safetensors, false)
    );
    assert_eq!(
        component(&s, "unet").kind,
        model(None, WeightFormat::Safetensors, false)
    );
}

const LEGACY_SHARDS_FILES: &str = "
model_index.json
scheduler/scheduler_config.json
text_encoder/config.json
text_encoder/model.fp16-00001-of-00002.safetensors
text_encoder/model.fp16-00002-of-00002.safetensors
text_encoder/model.safetensors.index.fp16.json
text_encoder/model.safetensors
unet/config.json
unet/diffusion_pytorch_model-00001-of-00002.fp16.safetensors
unet/diffusion_pytorch_model-00002-of-00002.fp16.safetensors
unet/diffusion_pytorch_model.safetensors.fp16.index.json
unet/diffusion_pytorch_model-00001-of-00002.safetensors
unet/diffusion_pytorch_model-00002-of-00002.safetensors
unet/diffusion_pytorch_model.safetensors.index.json
";

const LEGACY_SHARDS_INDEX: &str = r#"{
  "_class_name": "StableDiffusionPipeline",
  "scheduler": ["diffusers", "PNDMScheduler"],
  "text_encoder": ["transformers", "CLIPTextModel"],
  "unet": ["diffusers", "UNet2DConditionModel"]
}"#;

const LEGACY_UNET_INDEX: &str = r#"{"metadata": {"total_size": 1720000000},
 "weight_map": {"up.0.weight": "diffusion_pytorch_model-00002-of-00002.fp16.safetensors",
                "conv_in.bias": "diffusion_pytorch_model-00001-of-00002.fp16.safetensors"}}"#;

const CURRENT_T5_INDEX: &str = r#"{"weight_map": {"shared.weight": "model.fp16-00001-of-00002.safetensors",
 "encoder.final_layer_norm.weight": "model.fp16-00002-of-00002.safetensors"}, "metadata": {"total_size": 9524621312}}"#;

#[test]
fn both_variant_index_spellings_become_the_plain_index() {
    let l = listing(LEGACY_SHARDS_FILES);
    let mut s = select(&l, &index(LEGACY_SHARDS_INDEX), &options(Some("fp16")));
    for c in &mut s.components {
        let shards = match c.name.as_str() {
            "unet" => shards_from_index(LEGACY_UNET_INDEX.as_bytes()).unwrap(),
            "text_encoder" => shards_from_index(CURRENT_T5_INDEX.as_bytes()).unwrap(),
            _ => continue,
        };
        c.add_shards(&l, &shards).unwrap();
    }
    assert_eq!(
        pairs(component(&s, "unet")),
        owned(&[
            (
                "unet/diffusion_pytorch_model.safetensors.fp16.index.json",
                "diffusion_pytorch_model.safetensors.index.json"
            ),
            ("unet/config.json", "config.json"),
            (
                "unet/diffusion_pytorch_model-00001-of-00002.fp16.safetensors",
                "diffusion_pytorch_model-00001-of-00002.safetensors"
            ),
            (
                "unet/diffusion_pytorch_model-00002-of-00002.fp16.safetensors",
                "diffusion_pytorch_model-00002-of-00002.safetensors"
            ),
        ])
    );
    assert_eq!(
        pairs(component(&s, "text_encoder")),
        owned(&[
            (
                "text_encoder/model.safetensors.index.fp16.json",
                "model.safetensors.index.json"
            ),
            ("text_encoder/config.json", "config.json"),
            (
                "text_encoder/model.fp16-00001-of-00002.safetensors",
                "model-00001-of-00002.safetensors"
            ),
            (
                "text_encoder/model.fp16-00002-of-00002.safetensors",
                "model-00002-of-00002.safetensors"
            ),
        ])
    );
    assert_eq!(
        String::from_utf8(rewrite_index(LEGACY_UNET_INDEX.as_bytes(), Some("fp16")).unwrap())
            .unwrap(),
        r#"{
  "metadata": {
    "total_size": 1720000000
  },
  "weight_map": {
    "conv_in.bias": "diffusion_pytorch_model-00001-of-00002.safetensors",
    "up.0.weight": "diffusion_pytorch_model-00002-of-00002.safetensors"
  }
}
"#
    );
    assert_eq!(
        String::from_utf8(rewrite_index(CURRENT_T5_INDEX.as_bytes(), Some("fp16")).unwrap())
            .unwrap(),
        r#"{
  "metadata": {
    "total_size": 9524621312
  },
  "weight_map": {
    "encoder.final_layer_norm.weight": "model-00002-of-00002.safetensors",
    "shared.weight": "model-00001-of-00002.safetensors"
  }
}
"#
    );
    // Without the variant the plain shards are chosen, and the single file wins over the index.
    let s = select(&l, &index(LEGACY_SHARDS_INDEX), &options(None));
    assert_eq!(
        pairs(component(&s, "unet"))[0],
        (
            "unet/diffusion_pytorch_model.safetensors.index.json".to_string(),
            "diffusion_pytorch_model.safetensors.index.json".to_string()
        )
    );
    assert_eq!(
        pairs(component(&s, "text_encoder")),
        owned(&[
            ("text_encoder/config.json", "config.json"),
            ("text_encoder/model.safetensors", "model.safetensors"),
        ])
    );
}

const BIN_ONLY_FILES: &str = "
model_index.json
safety_checker/config.json
safety_checker/pytorch_model.bin
safety_checker/pytorch_model.fp16.bin
scheduler/scheduler_config.json
text_encoder/config.json
text_encoder/model.safetensors
text_encoder/pytorch_model.fp16.bin
unet/config.json
unet/diffusion_pytorch_model.safetensors
unet/diffusion_pytorch_model.bin
";

const BIN_ONLY_INDEX: &str = r#"{
  "_class_name": "StableDiffusionPipeline",
  "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
  "scheduler": ["diffusers", "PNDMScheduler"],
  "text_encoder": ["transformers", "CLIPTextModel"],
  "unet": ["diffusers", "UNet2DConditionModel"]
}"#;

#[test]
fn a_bin_only_component_does_not_flip_the_others_to_bin() {
    let l = listing(BIN_ONLY_FILES);
    let s = select(&l, &index(BIN_ONLY_INDEX), &options(None));
    let sc = component(&s, "safety_checker");
    assert_eq!(sc.kind, model(None, WeightFormat::Bin, false));
    assert_eq!(
        pairs(sc),
        owned(&[
            ("safety_checker/config.json", "config.json"),
            ("safety_checker/pytorch_model.bin", "pytorch_model.bin"),
        ])
    );
    assert_eq!(
        pairs(component(&s, "unet")),
        owned(&[
            ("unet/config.json", "config.json"),
            (
                "unet/diffusion_pytorch_model.safetensors",
                "diffusion_pytorch_model.safetensors"
            ),
        ])
    );
    // fp16 exists for text_encoder only as .bin: not taken while it has safetensors.
    let errors = select_pipeline(&l, &index(BIN_ONLY_INDEX), &{
        let mut o = options(None);
        o.component_variants
            .insert("text_encoder".into(), vec![Some("fp16".into())]);
        o
    })
    .unwrap_err();
    assert_eq!(
        messages(errors),
        [
            r#"text_encoder: variant "fp16" not found; available: (none) ("fp16" only as .bin, which is not used when the folder has .safetensors weights)"#
        ]
    );
    // With [fp16, None] the pipeline variant falls back to the plain safetensors there, and the
    // bin-only folder takes its fp16 .bin under the plain name.
    let s = select(&l, &index(BIN_ONLY_INDEX), &options(Some("fp16")));
    assert_eq!(
        pairs(component(&s, "safety_checker")),
        owned(&[
            ("safety_checker/config.json", "config.json"),
            ("safety_checker/pytorch_model.fp16.bin", "pytorch_model.bin"),
        ])
    );
    assert_eq!(
        component(&s, "text_encoder").kind,
        model(None, WeightFormat::Safetensors, false)
    );
}

const CUSTOM_FILES: &str = "
model_index.json
my_pipeline.py
pipeline.py
README.md
scheduler/scheduler_config.json
unet/README.md
unet/config.json
unet/diffusion_pytorch_model.safetensors
unet/my_unet_model.py
unet/unet_blocks.py
";

const CUSTOM_INDEX: &str = r#"{
  "_class_name": ["my_pipeline", "MyPipeline"],
  "scheduler": ["diffusers", "DDPMScheduler"],
  "unet": ["my_unet_model", "MyUNetModel"]
}"#;

#[test]
fn custom_pipeline_and_component_code_is_selected() {
    let i = index(CUSTOM_INDEX);
    assert_eq!(
        i.class_name,
        Some(PipelineClass::Custom {
            module: "my_pipeline".into(),
            class: "MyPipeline".into()
        })
    );
    let s = select(&listing(CUSTOM_FILES), &i, &options(None));
    let root: Vec<(&str, FileRole)> = s
        .root_files
        .iter()
        .map(|f| (f.target.as_str(), f.role))
        .collect();
    assert_eq!(
        root,
        [
            ("model_index.json", FileRole::Config),
            ("my_pipeline.py", FileRole::CustomCode),
            ("pipeline.py", FileRole::CustomCode),
        ]
    );
    let unet = component(&s, "unet");
    assert_eq!(
        pairs(unet),
        owned(&[
            ("unet/config.json", "config.json"),
            (
                "unet/diffusion_pytorch_model.safetensors",
                "diffusion_pytorch_model.safetensors"
            ),
            ("unet/my_unet_model.py", "my_unet_model.py"),
            ("unet/unet_blocks.py", "unet_blocks.py"),
        ])
    );
    let errors = select_pipeline(
        &listing("model_index.json\nscheduler/scheduler_config.json"),
        &i,
        &{
            let mut o = options(None);
            o.skip.insert("unet".into());
            o
        },
    )
    .unwrap_err();
    assert_eq!(
        messages(errors),
        [
            "model_index.json names the custom pipeline `my_pipeline`, but the repo has no `my_pipeline.py` at its root"
        ]
    );
}

const LTX_FILES: &str = "
model_index.json
ltx-2.3-22b.safetensors
ltx-2.3-22b-distilled.safetensors
scheduler/scheduler_config.json
transformer/config.json
transformer/diffusion_pytorch_model.safetensors
transformer/ltx-2.3-22b.safetensors
transformer/model.2.3.safetensors
";

#[test]
fn version_numbers_are_not_variants() {
    let i = index(
        r#"{"_class_name": "LTXPipeline", "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
            "transformer": ["diffusers", "LTXVideoTransformer3DModel"]}"#,
    );
    let s = select(&listing(LTX_FILES), &i, &options(None));
    assert_eq!(
        pairs(component(&s, "transformer")),
        owned(&[
            ("transformer/config.json", "config.json"),
            (
                "transformer/diffusion_pytorch_model.safetensors",
                "diffusion_pytorch_model.safetensors"
            ),
        ])
    );
    let errors = select_pipeline(&listing(LTX_FILES), &i, &options(Some("2.3"))).unwrap_err();
    assert_eq!(
        messages(errors),
        [
            "`2.3` is not a valid variant: use an ASCII letter followed by letters, digits, `_` or `-` (like fp16, bf16, non_ema)"
        ]
    );
}

#[test]
fn every_component_error_is_reported() {
    let files = "
model_index.json
scheduler/scheduler_config.json
text_encoder/model.safetensors
tokenizer/vocab.json
unet/config.json
unet/model.onnx
unet/weights.pb
unet/README.md
vae_1_0/config.json
vae_1_0/diffusion_pytorch_model.safetensors
";
    let errors = select_pipeline(&listing(files), &index(SD15_INDEX), &options(None)).unwrap_err();
    assert_eq!(
        errors[3].hint().as_deref(),
        Some("give `unet` another source in the spec, or set it to null if the pipeline allows it")
    );
    assert_eq!(
        messages(errors),
        [
            "component `feature_extractor` (transformers CLIPImageProcessor) has no folder `feature_extractor/` in the repo; its folders are: scheduler, text_encoder, tokenizer, unet, vae_1_0",
            "component `safety_checker` (stable_diffusion StableDiffusionSafetyChecker) has no folder `safety_checker/` in the repo; its folders are: scheduler, text_encoder, tokenizer, unet, vae_1_0",
            "component `text_encoder`: `text_encoder/` has weights but no config.json",
            "component `unet`: `unet/` has no .safetensors or .bin weights; it has: README.md, config.json, model.onnx, weights.pb",
            "component `vae` (diffusers AutoencoderKL) has no folder `vae/` in the repo; its folders are: scheduler, text_encoder, tokenizer, unet, vae_1_0",
        ]
    );
    let errors = select_pipeline(
        &listing("unet/config.json"),
        &index(r#"{"a": 1}"#),
        &options(None),
    )
    .unwrap_err();
    assert_eq!(
        messages(errors),
        ["the repo has no model_index.json at its root, so it is not a diffusers pipeline"]
    );
}

#[test]
fn ignore_files_are_dropped_first() {
    let i = index(
        r#"{"_class_name": "StableDiffusionPipeline", "_ignore_files": ["unet/diffusion_pytorch_model.safetensors"],
            "unet": ["diffusers", "UNet2DConditionModel"]}"#,
    );
    let l = listing(
        "model_index.json\nunet/config.json\nunet/diffusion_pytorch_model.safetensors\nunet/diffusion_pytorch_model.bin",
    );
    let s = select(&l, &i, &options(None));
    assert_eq!(
        component(&s, "unet").kind,
        model(None, WeightFormat::Bin, false)
    );
}

#[test]
fn model_index_parsing() {
    let i = index(SD15_INDEX);
    assert_eq!(i.components.len(), 7);
    assert_eq!(
        i.class_name,
        Some(PipelineClass::Builtin("StableDiffusionPipeline".into()))
    );
    assert_eq!(i.raw["requires_safety_checker"], serde_json::json!(true));
    let cases: &[(&str, &str)] = &[
        (
            "[]",
            "model_index.json is invalid: the top level is not a JSON object",
        ),
        ("{", "model_index.json is invalid: not valid JSON"),
        (
            r#"{"unet": ["diffusers"]}"#,
            r#"model_index.json is invalid: component `unet` must be [library, class] or [null, null], found ["diffusers"]"#,
        ),
        (
            r#"{"..": ["diffusers", "X"]}"#,
            "model_index.json is invalid: component name `..` is not a plain folder name",
        ),
        (
            r#"{"a/b": ["diffusers", "X"]}"#,
            "model_index.json is invalid: component name `a/b` is not a plain folder name",
        ),
        (
            r#"{"_class_name": 3}"#,
            "model_index.json is invalid: `_class_name` must be a string or [module, class], found 3",
        ),
        (
            r#"{"_ignore_files": "x"}"#,
            r#"model_index.json is invalid: `_ignore_files` must be a list of paths, found "x""#,
        ),
    ];
    for (json, message) in cases {
        let err = parse_model_index(json.as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), *message, "for {json}");
    }
}

#[test]
fn repo_root_components_nested_folders_and_bad_variants() {
    // A repo that is one component (madebyollin/sdxl-vae-fp16-fix): the root is the folder.
    let vae_repo = listing(
        "
.gitattributes
README.md
config.json
diffusion_pytorch_model.bin
diffusion_pytorch_model.safetensors
images/vae-fix.png
sdxl.vae.safetensors
sdxl_vae.safetensors
",
    );
    let c = select_component(&vae_repo, "vae", "", "diffusers", &[]).unwrap();
    assert_eq!(
        pairs(&c),
        owned(&[
            ("config.json", "config.json"),
            (
                "diffusion_pytorch_model.safetensors",
                "diffusion_pytorch_model.safetensors"
            ),
        ])
    );
    // A root without weights is taken without subfolders, checkpoints or .gitattributes.
    let tokenizer_repo = listing(
        "
.gitattributes
README.md
onnx/tokenizer.onnx
spiece.model
t5-xxl.safetensors
tokenizer.json
tokenizer_config.json
",
    );
    let c = select_component(&tokenizer_repo, "tokenizer_2", "", "transformers", &[]).unwrap();
    let targets: Vec<&str> = c.files.iter().map(|f| f.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "README.md",
            "spiece.model",
            "tokenizer.json",
            "tokenizer_config.json"
        ]
    );
    let err = select_component(
        &listing("config.json\nmodel.onnx"),
        "unet",
        "",
        "diffusers",
        &[],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "component `unet`: the repo root has no .safetensors or .bin weights; it has: config.json, model.onnx"
    );
    let l = listing(SD15_FILES);
    let err =
        select_component(&l, "unet", "unet", "diffusers", &[Some("../x".into())]).unwrap_err();
    assert!(matches!(err, SelectError::InvalidVariant { .. }));
    // Nested source folders work (a component taken from another repo's subfolder).
    let l = listing("a/b/unet/config.json\na/b/unet/diffusion_pytorch_model.fp16.safetensors");
    let c = select_component(&l, "unet", "a/b/unet", "diffusers", &[Some("fp16".into())]).unwrap();
    assert_eq!(
        pairs(&c),
        owned(&[
            ("a/b/unet/config.json", "config.json"),
            (
                "a/b/unet/diffusion_pytorch_model.fp16.safetensors",
                "diffusion_pytorch_model.safetensors"
            ),
        ])
    );
}

#[test]
fn shard_index_errors() {
    let cases: &[(&str, &str)] = &[
        ("nope", "shard index is invalid: not valid JSON"),
        ("{}", "shard index is invalid: no `weight_map` object"),
        (
            r#"{"weight_map": {"a": 1}}"#,
            "shard index is invalid: `weight_map` holds 1, not a file name",
        ),
    ];
    for (json, message) in cases {
        assert_eq!(
            shards_from_index(json.as_bytes()).unwrap_err().to_string(),
            *message
        );
        assert_eq!(
            rewrite_index(json.as_bytes(), Some("fp16"))
                .unwrap_err()
                .to_string(),
            *message
        );
    }
}

#[test]
fn canonical_names() {
    assert_eq!(
        canonical_weights_name("diffusers", WeightFormat::Safetensors),
        "diffusion_pytorch_model.safetensors"
    );
    assert_eq!(
        canonical_weights_name("diffusers", WeightFormat::Bin),
        "diffusion_pytorch_model.bin"
    );
    assert_eq!(
        canonical_weights_name("transformers", WeightFormat::Safetensors),
        "model.safetensors"
    );
    assert_eq!(
        canonical_weights_name("transformers", WeightFormat::Bin),
        "pytorch_model.bin"
    );
    assert_eq!(
        canonical_weights_name("stable_diffusion", WeightFormat::Safetensors),
        "model.safetensors"
    );
    let cases: &[(&str, Option<&str>, &str)] = &[
        (
            "model.fp16-00001-of-00002.safetensors",
            Some("fp16"),
            "model-00001-of-00002.safetensors",
        ),
        (
            "diffusion_pytorch_model-00001-of-00002.fp16.safetensors",
            Some("fp16"),
            "diffusion_pytorch_model-00001-of-00002.safetensors",
        ),
        (
            "model-00001-of-00002.safetensors",
            Some("fp16"),
            "model-00001-of-00002.safetensors",
        ),
        (
            "model.bf16-00001-of-00002.safetensors",
            Some("fp16"),
            "model.bf16-00001-of-00002.safetensors",
        ),
        (
            "model.fp16-00001-of-00002.safetensors",
            None,
            "model.fp16-00001-of-00002.safetensors",
        ),
        ("pytorch_model.fp16.bin", Some("fp16"), "pytorch_model.bin"),
        ("shard-1.safetensors", Some("fp16"), "shard-1.safetensors"),
    ];
    for (name, variant, expected) in cases {
        assert_eq!(
            canonical_shard_name(name, *variant),
            *expected,
            "{name} {variant:?}"
        );
    }
}

/// (name, prefix, format, variant, part, legacy); `None` when it is not a weight name.
type Parsed = Option<(
    &'static str,
    WeightFormat,
    Option<&'static str>,
    &'static str,
    bool,
)>;

#[test]
fn weight_name_table() {
    use WeightFormat::{Bin, Safetensors as St};
    let cases: &[(&str, Parsed)] = &[
        (
            "diffusion_pytorch_model.safetensors",
            Some(("diffusion_pytorch_model", St, None, "single", false)),
        ),
        (
            "pytorch_model.bin",
            Some(("pytorch_model", Bin, None, "single", false)),
        ),
        (
            "model-00001-of-00002.safetensors",
            Some(("model", St, None, "00001/00002", false)),
        ),
        (
            "model.safetensors.index.json",
            Some(("model", St, None, "index", false)),
        ),
        (
            "pytorch_model.bin.index.json",
            Some(("pytorch_model", Bin, None, "index", false)),
        ),
        (
            "diffusion_pytorch_model.fp16.safetensors",
            Some(("diffusion_pytorch_model", St, Some("fp16"), "single", false)),
        ),
        (
            "diffusion_pytorch_model.non_ema.bin",
            Some((
                "diffusion_pytorch_model",
                Bin,
                Some("non_ema"),
                "single",
                false,
            )),
        ),
        (
            "model.fp8-e4m3.safetensors",
            Some(("model", St, Some("fp8-e4m3"), "single", false)),
        ),
        (
            "model.fp16-00001-of-00002.safetensors",
            Some(("model", St, Some("fp16"), "00001/00002", false)),
        ),
        (
            "model.safetensors.index.fp16.json",
            Some(("model", St, Some("fp16"), "index", false)),
        ),
        (
            "diffusion_pytorch_model-00002-of-00003.bf16.safetensors",
            Some((
                "diffusion_pytorch_model",
                St,
                Some("bf16"),
                "00002/00003",
                true,
            )),
        ),
        (
            "diffusion_pytorch_model.safetensors.fp16.index.json",
            Some(("diffusion_pytorch_model", St, Some("fp16"), "index", true)),
        ),
        (
            "weights.safetensors",
            Some(("weights", St, None, "single", false)),
        ),
        // Not weights.
        ("ltx-2.3-22b.safetensors", None),
        ("model.2.3.safetensors", None),
        ("model.23.safetensors", None),
        ("model.fp16.2.safetensors", None),
        ("v1-5-pruned.safetensors", None),
        ("sd_xl_base_1.0.safetensors", None),
        ("flux1-schnell.safetensors", None),
        ("openvino_model.bin", None),
        ("flax_model.msgpack", None),
        ("diffusion_flax_model.msgpack", None),
        ("model.onnx", None),
        ("weights.pb", None),
        ("model.ckpt", None),
        ("model.fp16.gguf", None),
        ("mymodel.safetensors", None),
        ("model_fp16.safetensors", None),
        ("model-0001-of-0002.safetensors", None),
        ("model-00001-of-00002.fp16.safetensors.index.json", None),
        ("model.index.safetensors", None),
        ("model.safetensors.index.index.json", None),
        ("model.fp16-.safetensors", None),
        ("model..safetensors", None),
        ("model.safetensors.json", None),
        ("model", None),
        ("model.", None),
        ("model-", None),
        ("", None),
    ];
    for (name, expected) in cases {
        let got = WeightName::parse(name).map(|w| {
            let part = match w.part {
                WeightPart::Single => "single".to_string(),
                WeightPart::Index => "index".to_string(),
                WeightPart::Shard { index, total } => format!("{index}/{total}"),
                _ => "other".to_string(),
            };
            (w.prefix, w.format, w.variant, part, w.legacy)
        });
        let expected = expected.map(|(p, f, v, part, legacy)| (p, f, v, part.to_string(), legacy));
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn variant_tokens() {
    for ok in [
        "fp16",
        "bf16",
        "fp8",
        "non_ema",
        "ema",
        "no_ema",
        "fp8-e4m3fn",
        "Q8",
    ] {
        assert!(is_valid_variant(ok), "{ok}");
    }
    for bad in [
        "",
        "2.3",
        "16",
        "fp16.",
        "fp-",
        "../x",
        "a/b",
        "index",
        "json",
        "x-00001-of-00002",
        "é",
        &"a".repeat(65),
    ] {
        assert!(!is_valid_variant(bad), "{bad}");
    }
}

proptest! {
    #[test]
    fn no_file_name_panics(name in "\\PC{0,40}", variant in "[a-z0-9_.-]{0,8}") {
        let parsed = WeightName::parse(&name);
        if let Some(w) = parsed {
            prop_assert!(WeightName::parse(&w.canonical()).is_some());
        }
        let v = (!variant.is_empty()).then_some(variant.as_str());
        let once = canonical_shard_name(&name, v);
        prop_assert_eq!(canonical_shard_name(&once, v), once);
    }

    #[test]
    fn weight_like_names_never_panic(
        prefix in "(diffusion_pytorch_model|model|pytorch_model|weights)",
        middle in "[.a-z0-9_-]{0,24}",
        ext in "(safetensors|bin|json|onnx)",
        variant in "(fp16|bf16|non_ema|x)",
    ) {
        let name = format!("{prefix}{middle}.{ext}");
        let once = canonical_shard_name(&name, Some(&variant));
        prop_assert_eq!(canonical_shard_name(&once, Some(&variant)), once.clone());
        if let Some(w) = WeightName::parse(&name) {
            prop_assert_eq!(w.prefix, prefix.as_str());
        }
        let l: Listing = [(format!("unet/{name}"), 1u64, "e".to_string()), ("unet/config.json".to_string(), 1, "e".to_string())]
            .into_iter()
            .collect();
        let _ = select_component(&l, "unet", "unet", "diffusers", &[Some(variant), None]);
    }
}

#[test]
fn listing_helpers() {
    let mut l = Listing::new();
    assert!(l.is_empty());
    l.insert("a/b", 3, "e");
    assert_eq!(l.len(), 1);
    assert_eq!(l.get("a/b").map(|f| f.size), Some(3));
    assert_eq!(l.iter().count(), 1);
    let sd15 = listing(SD15_FILES);
    let sizes: BTreeMap<&str, u64> = sd15.iter().map(|(p, f)| (p, f.size)).collect();
    assert_eq!(sizes.len(), 43);
}
