//! The fixture helpers.

use pipefetch_hub_server::HubServer;
use pipefetch_hub_server::fixture::{RepoBuilder, random_bytes, sd_like};

use crate::*;

#[tokio::test]
async fn sd_like_has_the_diffusers_layout() {
    let root = tempfile::tempdir().unwrap();
    let dir = sd_like(root.path(), "org/sd", 64_000).unwrap();
    assert_eq!(dir, root.path().join("models/org/sd"));
    let hub = HubServer::builder(root.path()).start().await.unwrap();
    let v = get(&format!("{}/api/models/org/sd?blobs=1", hub.url()))
        .await
        .json();
    let siblings = v["siblings"].as_array().unwrap();
    let size = |name: &str| -> u64 {
        siblings
            .iter()
            .find(|s| s["rfilename"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))["size"]
            .as_u64()
            .unwrap()
    };
    let names: Vec<&str> = siblings
        .iter()
        .map(|s| s["rfilename"].as_str().unwrap())
        .collect();
    for expected in [
        ".gitattributes",
        "README.md",
        "model_index.json",
        "feature_extractor/preprocessor_config.json",
        "safety_checker/config.json",
        "safety_checker/model.safetensors",
        "safety_checker/model.fp16.safetensors",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "text_encoder/model.fp16.safetensors",
        "tokenizer/merges.txt",
        "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.bin",
        "vae/diffusion_pytorch_model.fp16.bin",
        "v1-5-pruned.safetensors",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert_eq!(names.len(), 24);
    // SD proportions: fp16 is half of fp32; unet is the biggest component.
    let unet = size("unet/diffusion_pytorch_model.safetensors");
    assert_eq!(
        size("unet/diffusion_pytorch_model.fp16.safetensors"),
        unet / 2
    );
    assert!(unet > 4 * size("text_encoder/model.safetensors"));
    let total: u64 = siblings
        .iter()
        .filter(|s| s.get("lfs").is_some())
        .map(|s| s["size"].as_u64().unwrap())
        .sum();
    assert!((63_000..=64_000).contains(&total), "{total}");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("model_index.json")).unwrap()).unwrap();
    assert_eq!(index["_class_name"], "StableDiffusionPipeline");
    assert_eq!(index["unet"][1], "UNet2DConditionModel");
}

#[test]
fn builder_writes_files_and_marker() {
    let root = tempfile::tempdir().unwrap();
    let dir = RepoBuilder::new(root.path(), "models", "a/b")
        .file("x/y.txt", b"hi".to_vec())
        .random_file("w.bin", 11, 100)
        .gated()
        .build()
        .unwrap();
    assert_eq!(std::fs::read(dir.join("x/y.txt")).unwrap(), b"hi");
    assert_eq!(
        std::fs::read(dir.join("w.bin")).unwrap(),
        random_bytes(11, 100)
    );
    assert!(dir.join(".gated").is_file());
    let err = RepoBuilder::new(root.path(), "models", "a/b")
        .file("../x", b"".to_vec())
        .build();
    assert!(matches!(
        err,
        Err(pipefetch_hub_server::Error::InvalidFilePath { .. })
    ));
    assert!(
        RepoBuilder::new(root.path(), "models", "nope")
            .build()
            .is_err()
    );
}

#[tokio::test]
async fn sd_pipeline_holds_what_the_pipeline_pulls_and_no_decoy() {
    let root = tempfile::tempdir().unwrap();
    let dir = pipefetch_hub_server::fixture::sd_pipeline(root.path(), "org/pipe", 100_000).unwrap();
    let mut weights = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "safetensors" || e == "bin")
            {
                let rel = path
                    .strip_prefix(&dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                weights.push((rel, entry.metadata().unwrap().len()));
            }
        }
    }
    weights.sort();
    let names: Vec<&str> = weights.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "safety_checker/model.safetensors",
            "text_encoder/model.safetensors",
            "unet/diffusion_pytorch_model.safetensors",
            "vae/diffusion_pytorch_model.safetensors",
        ]
    );
    let total: u64 = weights.iter().map(|(_, len)| len).sum();
    // Each file is its share of the scale, rounded down, in a valid safetensors container.
    assert!((99_000..=101_000).contains(&total), "{total}");
    assert!(dir.join("model_index.json").is_file());
    assert!(dir.join("unet/config.json").is_file());
    assert!(dir.join("tokenizer/vocab.json").is_file());
}
