//! Property tests: no input makes the parser panic, and generated specs round-trip.

use std::collections::BTreeMap;

use pipefetch_spec::{ComponentSource, PipelineSpec, RepoFile, RepoId, VariantPref, parse_str};
use proptest::prelude::*;

const VALID: &str = "\
name: mixed
repo_id: stabilityai/stable-diffusion-xl-base-1.0
revision: main
variant: fp16
model_index: {_class_name: StableDiffusionXLPipeline, unet: [diffusers, UNet2DConditionModel]}
components:
  text_encoder:
    hf_repo: stabilityai/stable-diffusion-xl-base-1.0/text_encoder
    variant: [bf16, fp16, null]
  vae:
    source: [madebyollin/sdxl-vae-fp16-fix/config.json]
    revision: main
  unet: {local_path: ./unet}
  transformer:
    urls: {a.safetensors: 'https://example.com/a'}
    sha256: {a.safetensors: 0000000000000000000000000000000000000000000000000000000000000000}
  safety_checker: null
";

/// Characters that matter to YAML and to our rules.
const SPICE: &[char] = &[
    ' ', '\t', '\n', ':', '-', '[', ']', '{', '}', ',', '#', '&', '*', '!', '|', '>', '\'', '"',
    '%', '@', '`', '?', '/', '\\', '.', '~', '\0', 'é', '\u{feff}', '\r',
];

fn mutate(text: &str, edits: &[(usize, u8, usize)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for &(at, op, pick) in edits {
        if chars.is_empty() {
            break;
        }
        let at = at % chars.len();
        let c = SPICE[pick % SPICE.len()];
        match op % 4 {
            0 => chars.insert(at, c),
            1 => {
                chars.remove(at);
            }
            2 => chars[at] = c,
            _ => {
                // Duplicate a whole line: makes duplicate keys and odd indentation.
                let line_start = chars[..at]
                    .iter()
                    .rposition(|c| *c == '\n')
                    .map_or(0, |i| i + 1);
                let line_end = chars[at..]
                    .iter()
                    .position(|c| *c == '\n')
                    .map_or(chars.len(), |i| at + i + 1);
                let line: Vec<char> = chars[line_start..line_end].to_vec();
                chars.splice(line_end..line_end, line);
            }
        }
    }
    chars.into_iter().collect()
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9_-]{0,8}"
}

fn repo_id() -> impl Strategy<Value = RepoId> {
    (
        "[A-Za-z0-9]{1,6}",
        "[A-Za-z0-9][A-Za-z0-9._-]{0,6}[A-Za-z0-9]",
    )
        .prop_filter_map("valid repo id", |(org, name)| {
            RepoId::new(&format!("{org}/{name}")).ok()
        })
}

fn rel_path() -> impl Strategy<Value = String> {
    // Names that YAML would otherwise read as other types are included on purpose.
    prop_oneof![
        "[a-z0-9_]{1,6}(/[a-z0-9_.]{1,6}){0,2}\\.(json|safetensors)",
        Just("true".to_owned()),
        Just("null".to_owned()),
        Just("1.5".to_owned()),
        Just("0x10".to_owned()),
    ]
    .prop_filter("valid path", |p| {
        pipefetch_spec::validate_relative_path(p).is_ok()
    })
}

fn revision() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just("main".to_owned()),
        Just("refs/pr/1".to_owned()),
        Just("1.0".to_owned()),
        Just("null".to_owned()),
        "[0-9a-f]{40}",
    ])
}

fn variant_pref() -> impl Strategy<Value = VariantPref> {
    prop_oneof![
        Just(VariantPref::Inherit),
        prop::collection::btree_set(prop::option::of(token()), 1..4)
            .prop_map(|set| VariantPref::Prefer(set.into_iter().collect())),
    ]
}

fn component() -> impl Strategy<Value = ComponentSource> {
    prop_oneof![
        (
            repo_id(),
            prop::option::of(rel_path()),
            revision(),
            variant_pref()
        )
            .prop_map(
                |(repo_id, subfolder, revision, variant)| ComponentSource::HfRepo {
                    repo_id,
                    subfolder,
                    revision,
                    variant
                }
            ),
        (
            prop::collection::btree_set((repo_id(), rel_path()), 1..4),
            revision()
        )
            .prop_map(|(files, revision)| ComponentSource::Files {
                files: files
                    .into_iter()
                    .map(|(repo_id, path)| RepoFile { repo_id, path })
                    .collect(),
                revision
            }),
        prop_oneof![
            Just("~".to_owned()),
            Just("~/models/x".to_owned()),
            Just("/abs/x y".to_owned()),
            Just("rel/dir".to_owned()),
            Just("null".to_owned()),
            Just("- x".to_owned()),
        ]
        .prop_map(|raw| {
            let spec = parse_str(
                &format!("repo_id: a/b\ncomponents:\n  c: {{local_path: '{raw}'}}\n"),
                "/specs/p.yaml",
            )
            .unwrap();
            spec.components["c"].clone()
        }),
        (
            prop::collection::btree_map(rel_path(), token(), 1..4),
            any::<bool>()
        )
            .prop_map(|(files, pin)| {
                let files: BTreeMap<String, String> = files
                    .into_iter()
                    .map(|(name, seg)| (name, format!("https://example.com/{seg}?x=1&y=#z")))
                    .collect();
                let sha256 = if pin {
                    files.keys().map(|k| (k.clone(), "ab".repeat(32))).collect()
                } else {
                    BTreeMap::new()
                };
                ComponentSource::Urls { files, sha256 }
            }),
        Just(ComponentSource::Removed),
    ]
}

fn spec() -> impl Strategy<Value = PipelineSpec> {
    (
        "[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}",
        repo_id(),
        revision(),
        prop::option::of(token()),
        prop::collection::btree_map("[a-z][a-z0-9_]{0,8}", component(), 0..5),
    )
        .prop_map(
            |(name, repo_id, revision, variant, components)| PipelineSpec {
                name,
                repo_id,
                revision: revision.unwrap_or_else(|| "main".to_owned()),
                variant,
                model_index: None,
                components,
            },
        )
}

proptest! {
    // 256 cases by default; set PROPTEST_CASES for a longer fuzzing run.

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse_str(&text, "fuzz.yaml").map_err(|d| d.render(true));
    }

    #[test]
    fn arbitrary_yamlish_text_never_panics(text in "[a-z_:/ \\-\\[\\]{},'\"#&*!|>\\t\\n.~0-9]{0,300}") {
        let _ = parse_str(&text, "fuzz.yaml").map_err(|d| d.render(false));
    }

    #[test]
    fn mutated_valid_specs_never_panic(edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<usize>()), 1..8)) {
        let text = mutate(VALID, &edits);
        if let Err(diagnostics) = parse_str(&text, "mutated.yaml") {
            // Every diagnostic has a position inside the text, and renders.
            let lines = text.split('\n').count();
            for d in &diagnostics {
                prop_assert!(d.line >= 1 && d.line <= lines, "{d:?}");
                prop_assert!(!d.render(false).is_empty());
            }
        }
    }

    #[test]
    fn generated_specs_round_trip(spec in spec()) {
        let yaml = spec.to_yaml();
        let parsed = parse_str(&yaml, "/specs/p.yaml");
        prop_assert_eq!(parsed.as_ref(), Ok(&spec), "YAML was:\n{}", yaml);
    }
}

#[test]
fn the_valid_fuzz_seed_is_valid() {
    parse_str(VALID, "seed.yaml").unwrap();
}
