//! The checked-in examples and the issue's seed spec.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pipefetch_spec::{
    ComponentSource, ModelIndexOverride, PipelineSpec, RepoFile, RepoId, VariantPref, load_file,
    parse_str,
};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn repo(id: &str) -> RepoId {
    RepoId::new(id).unwrap()
}

fn load_example(name: &str) -> PipelineSpec {
    let path = examples_dir().join(name);
    load_file(&path).unwrap_or_else(|d| panic!("{}:\n{d}", path.display()))
}

#[test]
fn every_example_validates_and_round_trips() {
    let mut names: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "flux1-schnell-8bit.yaml",
            "sd15-no-safety-checker.yaml",
            "sdxl-fp16-vae-fix.yaml",
            "sdxl-mixed-sources.yaml",
        ]
    );
    for name in names {
        let path = examples_dir().join(&name);
        let spec = load_example(&name);
        // The name given in each example matches its file, so either can be used.
        assert_eq!(format!("{}.yaml", spec.name), name);
        let origin = std::path::absolute(&path).unwrap();
        assert_eq!(
            parse_str(&spec.to_yaml(), &origin).as_ref(),
            Ok(&spec),
            "{name}"
        );
    }
}

#[test]
fn sdxl_with_the_fp16_fix_vae() {
    let spec = load_example("sdxl-fp16-vae-fix.yaml");
    assert_eq!(
        spec.repo_id,
        repo("stabilityai/stable-diffusion-xl-base-1.0")
    );
    assert_eq!(spec.revision, "main");
    assert_eq!(spec.variant.as_deref(), Some("fp16"));
    let vae_repo = repo("madebyollin/sdxl-vae-fp16-fix");
    assert_eq!(
        spec.components,
        BTreeMap::from([(
            "vae".to_owned(),
            ComponentSource::Files {
                files: vec![
                    RepoFile {
                        repo_id: vae_repo.clone(),
                        path: "config.json".to_owned()
                    },
                    RepoFile {
                        repo_id: vae_repo,
                        path: "diffusion_pytorch_model.safetensors".to_owned()
                    },
                ],
                revision: None,
            }
        )])
    );
}

#[test]
fn flux_schnell_with_8bit_transformer_and_t5() {
    let spec = load_example("flux1-schnell-8bit.yaml");
    assert_eq!(spec.repo_id, repo("black-forest-labs/FLUX.1-schnell"));
    assert_eq!(spec.variant, None);
    let from_cozy = |folder: &str| ComponentSource::HfRepo {
        repo_id: repo("cozy-creator/FLUX.1-schnell-8bit"),
        subfolder: Some(folder.to_owned()),
        revision: None,
        variant: VariantPref::Inherit,
    };
    assert_eq!(
        spec.components,
        BTreeMap::from([
            ("text_encoder_2".to_owned(), from_cozy("text_encoder_2")),
            ("transformer".to_owned(), from_cozy("transformer")),
        ])
    );
    let cozy = repo("cozy-creator/FLUX.1-schnell-8bit");
    assert_eq!(spec.revision_for(&cozy, None), "main");
    assert_eq!(spec.revision_for(&spec.repo_id, None), "main");
}

#[test]
fn sd15_without_the_safety_checker() {
    let spec = load_example("sd15-no-safety-checker.yaml");
    assert_eq!(
        spec.repo_id,
        repo("stable-diffusion-v1-5/stable-diffusion-v1-5")
    );
    assert_eq!(
        spec.components,
        BTreeMap::from([("safety_checker".to_owned(), ComponentSource::Removed)])
    );
    assert_eq!(
        spec.removed_components().collect::<Vec<_>>(),
        ["safety_checker"]
    );
}

#[test]
fn mixing_all_four_source_kinds() {
    let spec = load_example("sdxl-mixed-sources.yaml");
    let kinds: Vec<(&str, &str)> = spec
        .components
        .iter()
        .map(|(name, source)| (name.as_str(), source.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("scheduler", "local_path"),
            ("text_encoder_2", "hf_repo"),
            ("unet", "urls"),
            ("vae", "source"),
        ]
    );
    let ComponentSource::LocalPath { path, resolved } = &spec.components["scheduler"] else {
        unreachable!()
    };
    assert_eq!(path, Path::new("./scheduler"));
    assert_eq!(
        resolved,
        &std::path::absolute(examples_dir())
            .unwrap()
            .join("./scheduler")
    );
    let ComponentSource::HfRepo { variant, .. } = &spec.components["text_encoder_2"] else {
        unreachable!()
    };
    assert_eq!(
        variant,
        &VariantPref::Prefer(vec![Some("bf16".to_owned()), Some("fp16".to_owned()), None])
    );
}

/// The spec from the issue, verbatim: `0f1e...` is a placeholder, not a hash.
const SEED: &str = r#"name: sdxl-fp16-vae-fix            # optional; defaults to the file's stem
repo_id: stabilityai/stable-diffusion-xl-base-1.0   # the base repo (required)
revision: main                     # branch, tag or 40-hex commit; default main
variant: fp16                      # optional default variant for components taken from the base repo
model_index: model_index.json      # optional override: a path relative to the spec file, or an inline mapping
components:                        # components not listed come from the base repo
  text_encoder:
    hf_repo: stabilityai/stable-diffusion-xl-base-1.0/text_encoder   # ORG/NAME[/subfolder]
    variant: fp16                  # a name, or a preference list like [bf16, fp16, null] (null = no variant)
    revision: main
  vae:
    source:                        # exactly these files (ORG/NAME/path/in/repo)
      - madebyollin/sdxl-vae-fp16-fix/diffusion_pytorch_model.safetensors
      - madebyollin/sdxl-vae-fp16-fix/config.json
    revision: main
  unet:
    local_path: ~/models/my-unet   # relative to the spec file, absolute, or ~
  transformer:
    urls:                          # filename -> URL
      1234.safetensors: https://civitai.com/api/download/models/1234
      config.json: https://example.com/1234/config.json
    sha256:                        # optional pins, verified after download
      1234.safetensors: 0f1e...
  safety_checker: null             # drop a component
"#;

#[test]
fn seed_spec_verbatim_flags_only_the_placeholder_hash() {
    let diagnostics = parse_str(SEED, "/specs/seed.yaml").unwrap_err();
    assert_eq!(
        diagnostics.to_string(),
        "error: invalid SHA-256 for `1234.safetensors`: a SHA-256 is 64 hexadecimal digits, this is 7 characters\n  --> /specs/seed.yaml:23:25\n   |\n23 |       1234.safetensors: 0f1e...\n   |                         ^^^^^^^\n   = help: copy the full hash, such as the one `sha256sum` prints\n"
    );
}

#[test]
fn seed_spec_with_a_real_hash_gives_the_typed_spec() {
    let hash = "0f1e".repeat(16);
    let text = SEED.replace("0f1e...", &hash);
    let spec = parse_str(&text, "/specs/seed.yaml").unwrap();
    let sdxl = repo("stabilityai/stable-diffusion-xl-base-1.0");
    let vae = repo("madebyollin/sdxl-vae-fp16-fix");
    let home = PathBuf::from(std::env::var_os("HOME").unwrap());
    let expected = PipelineSpec {
        name: "sdxl-fp16-vae-fix".to_owned(),
        repo_id: sdxl.clone(),
        revision: "main".to_owned(),
        variant: Some("fp16".to_owned()),
        model_index: Some(ModelIndexOverride::Path {
            raw: "model_index.json".to_owned(),
            resolved: PathBuf::from("/specs/model_index.json"),
        }),
        components: BTreeMap::from([
            (
                "text_encoder".to_owned(),
                ComponentSource::HfRepo {
                    repo_id: sdxl,
                    subfolder: Some("text_encoder".to_owned()),
                    revision: Some("main".to_owned()),
                    variant: VariantPref::Prefer(vec![Some("fp16".to_owned())]),
                },
            ),
            (
                "vae".to_owned(),
                ComponentSource::Files {
                    files: vec![
                        RepoFile {
                            repo_id: vae.clone(),
                            path: "diffusion_pytorch_model.safetensors".to_owned(),
                        },
                        RepoFile {
                            repo_id: vae,
                            path: "config.json".to_owned(),
                        },
                    ],
                    revision: Some("main".to_owned()),
                },
            ),
            (
                "unet".to_owned(),
                ComponentSource::LocalPath {
                    path: PathBuf::from("~/models/my-unet"),
                    resolved: home.join("models/my-unet"),
                },
            ),
            (
                "transformer".to_owned(),
                ComponentSource::Urls {
                    files: BTreeMap::from([
                        (
                            "1234.safetensors".to_owned(),
                            "https://civitai.com/api/download/models/1234".to_owned(),
                        ),
                        (
                            "config.json".to_owned(),
                            "https://example.com/1234/config.json".to_owned(),
                        ),
                    ]),
                    sha256: BTreeMap::from([("1234.safetensors".to_owned(), hash)]),
                },
            ),
            ("safety_checker".to_owned(), ComponentSource::Removed),
        ]),
    };
    assert_eq!(spec, expected);
    assert_eq!(parse_str(&spec.to_yaml(), "/specs/seed.yaml"), Ok(expected));
}

#[test]
fn flow_style_is_accepted() {
    let block = parse_str(
        SEED.replace("0f1e...", &"a".repeat(64)).as_str(),
        "/s/x.yaml",
    )
    .unwrap();
    let flow = format!(
        "{{name: sdxl-fp16-vae-fix, repo_id: stabilityai/stable-diffusion-xl-base-1.0, variant: fp16, model_index: model_index.json, components: {{
  text_encoder: {{hf_repo: stabilityai/stable-diffusion-xl-base-1.0/text_encoder, variant: fp16, revision: main}},
  vae: {{source: [madebyollin/sdxl-vae-fp16-fix/diffusion_pytorch_model.safetensors, madebyollin/sdxl-vae-fp16-fix/config.json], revision: main}},
  unet: {{local_path: ~/models/my-unet}},
  transformer: {{urls: {{1234.safetensors: 'https://civitai.com/api/download/models/1234', config.json: 'https://example.com/1234/config.json'}}, sha256: {{1234.safetensors: {}}}}},
  safety_checker: null}}}}
",
        "a".repeat(64)
    );
    assert_eq!(parse_str(&flow, "/s/x.yaml"), Ok(block));
}

#[test]
fn inline_model_index_becomes_json() {
    let spec = parse_str(
        "repo_id: a/b\nmodel_index:\n  _class_name: StableDiffusionPipeline\n  _diffusers_version: 0.30.1\n  requires_safety_checker: false\n  unet: [diffusers, UNet2DConditionModel]\n  safety_checker: [null, null]\n  scale: 1.5\n  steps: 30\n  note: 'true'\n",
        "x.yaml",
    )
    .unwrap();
    let Some(ModelIndexOverride::Inline(map)) = &spec.model_index else {
        panic!("{spec:?}");
    };
    assert_eq!(
        serde_json::Value::Object(map.clone()),
        serde_json::json!({
            "_class_name": "StableDiffusionPipeline",
            "_diffusers_version": "0.30.1",
            "requires_safety_checker": false,
            "unet": ["diffusers", "UNet2DConditionModel"],
            "safety_checker": [null, null],
            "scale": 1.5,
            "steps": 30,
            "note": "true",
        })
    );
    assert_eq!(parse_str(&spec.to_yaml(), "x.yaml"), Ok(spec));
}
