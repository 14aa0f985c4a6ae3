//! One test per validation rule, each asserting the exact message, position and help.

use super::{errors, ok, single, summary};

const BASE: &str = "repo_id: stabilityai/stable-diffusion-xl-base-1.0\n";

fn with_component(body: &str) -> String {
    format!("{BASE}components:\n  vae:\n{body}")
}

#[test]
fn tab_in_indentation() {
    let (message, help) = single(&format!("{BASE}components:\n\tvae: null\n"));
    assert_eq!(message, "3:1: tab character in indentation");
    assert_eq!(
        help.as_deref(),
        Some("YAML indents with spaces only; replace the tab with spaces")
    );
    // The excerpt shows the tab as spaces and the caret under it.
    assert_eq!(
        errors(&format!("{BASE}components:\n  \tvae: null\n")).to_string(),
        "error: tab character in indentation\n --> spec.yaml:3:3\n  |\n3 |       vae: null\n  |   ^^^^\n  = help: YAML indents with spaces only; replace the tab with spaces\n"
    );
}

#[test]
fn a_tab_does_not_hide_the_other_problems() {
    assert_eq!(
        summary(&format!(
            "{BASE}varient: fp16\ncomponents:\n  unet:\n\thf_rpo: a/b\n"
        )),
        [
            "2:1: unknown key `varient`",
            "5:1: tab character in indentation",
            "5:5: unknown key `hf_rpo` in component `unet`",
        ]
    );
}

#[test]
fn tabs_after_content_and_in_comments_are_fine() {
    ok(&format!("{BASE}revision:\tmain\n\t# a comment\n"));
}

#[test]
fn duplicate_keys_at_every_level() {
    assert_eq!(
        summary(&format!(
            "{BASE}revision: main\nrevision: dev\ncomponents:\n  vae: null\n  vae:\n    local_path: a\n    local_path: b\n"
        )),
        [
            "3:1: duplicate key `revision`",
            "6:3: duplicate key `vae` in `components`",
        ]
    );
    let (message, help) = single(&with_component("    local_path: a\n    local_path: b\n"));
    assert_eq!(
        message,
        "5:5: duplicate key `local_path` in component `vae`"
    );
    assert_eq!(
        help.as_deref(),
        Some("`local_path` is already set on line 4; keep only one")
    );
}

#[test]
fn unknown_keys_with_did_you_mean() {
    let (message, help) = single(&with_component("    hf_rpo: org/name\n"));
    assert_eq!(message, "4:5: unknown key `hf_rpo` in component `vae`");
    assert_eq!(help.as_deref(), Some("did you mean `hf_repo`?"));

    let (message, help) = single("reop_id: org/name\n");
    assert_eq!(message, "1:1: unknown key `reop_id`");
    assert_eq!(help.as_deref(), Some("did you mean `repo_id`?"));

    let (message, help) = single(&format!("{BASE}weights: x\n"));
    assert_eq!(message, "2:1: unknown key `weights`");
    assert_eq!(
        help.as_deref(),
        Some(
            "expected one of `name`, `repo_id`, `revision`, `variant`, `model_index`, `components`"
        )
    );
}

#[test]
fn component_keys_at_the_top_level_are_explained() {
    let (message, help) = single(&format!("{BASE}hf_repo: a/b\n"));
    assert_eq!(message, "2:1: unknown key `hf_repo`");
    assert_eq!(
        help.as_deref(),
        Some("`hf_repo` belongs to a component, under `components:`")
    );
    let (message, help) = single(&format!("{BASE}vae:\n  hf_repo: a/b\n"));
    assert_eq!(message, "2:1: unknown key `vae`");
    assert_eq!(
        help.as_deref(),
        Some("`vae` looks like a component; put it under `components:`")
    );
}

#[test]
fn component_with_no_source() {
    let (message, help) = single(&with_component("    revision: main\n"));
    assert_eq!(message, "3:3: component `vae` has no source");
    assert_eq!(
        help.as_deref(),
        Some(
            "give one of `hf_repo`, `source`, `local_path` or `urls`, or write `vae: null` to drop the component"
        )
    );
    assert_eq!(
        summary(&format!("{BASE}components:\n  vae: {{}}\n")),
        ["3:3: component `vae` has no source"]
    );
}

#[test]
fn component_with_two_sources() {
    let (message, help) = single(&with_component(
        "    hf_repo: a/b/vae\n    local_path: ./vae\n",
    ));
    assert_eq!(
        message,
        "5:5: component `vae` has more than one source: `hf_repo` and `local_path`"
    );
    assert_eq!(
        help.as_deref(),
        Some("a component comes from exactly one place; keep one of them")
    );
}

#[test]
fn component_must_be_a_mapping_or_null() {
    let (message, help) = single(&with_component("    - a/b\n"));
    assert_eq!(
        message,
        "4:5: component `vae` must be a mapping with one source, or `null` to drop it; found a list"
    );
    assert_eq!(
        help.as_deref(),
        Some("for example `vae: {hf_repo: ORG/NAME/vae}`")
    );
}

#[test]
fn modifiers_only_where_they_apply() {
    assert_eq!(
        summary(&with_component(
            "    local_path: ./vae\n    variant: fp16\n    sha256: {a: b}\n"
        )),
        [
            "5:5: `variant` does not apply to a `local_path` component (`vae`)",
            "6:5: `sha256` does not apply to a `local_path` component (`vae`)",
        ]
    );
    let (message, help) = single(&with_component(
        "    urls: {a.bin: 'https://example.com/a'}\n    revision: main\n",
    ));
    assert_eq!(
        message,
        "5:5: `revision` does not apply to a `urls` component (`vae`)"
    );
    assert_eq!(
        help.as_deref(),
        Some("`revision` applies to `hf_repo` and `source` components")
    );
}

#[test]
fn bad_repo_ids() {
    let cases = [
        (
            "repo_id: gpt2\n",
            "1:10: invalid repo id `gpt2`: expected ORG/NAME with exactly one `/`",
        ),
        (
            "repo_id: a--b/c\n",
            "1:10: invalid repo id `a--b/c`: the organisation contains `--` or `..`, which the Hub forbids",
        ),
        (
            "repo_id: a/b..c\n",
            "1:10: invalid repo id `a/b..c`: the name contains `--` or `..`, which the Hub forbids",
        ),
        (
            "repo_id: a/b!\n",
            "1:10: invalid repo id `a/b!`: the name contains `!`; only letters, digits, `-`, `_` and `.` are allowed",
        ),
        (
            "repo_id: a/.b\n",
            "1:10: invalid repo id `a/.b`: the name starts or ends with `-` or `.`",
        ),
    ];
    for (yaml, expected) in cases {
        let (message, help) = single(yaml);
        assert_eq!(message, expected);
        assert_eq!(
            help.as_deref(),
            Some("repo ids look like `stabilityai/stable-diffusion-xl-base-1.0`")
        );
    }
    let long = format!("repo_id: org/{}\n", "n".repeat(97));
    assert_eq!(
        single(&long).0,
        format!(
            "1:10: invalid repo id `org/{}`: the name is 97 characters long; the Hub allows at most 96",
            "n".repeat(97)
        )
    );
    let (message, help) =
        single("repo_id: https://huggingface.co/black-forest-labs/FLUX.1-schnell\n");
    assert_eq!(
        message,
        "1:10: invalid repo id `https://huggingface.co/black-forest-labs/FLUX.1-schnell`: expected ORG/NAME with exactly one `/`"
    );
    assert_eq!(
        help.as_deref(),
        Some("write only ORG/NAME: `black-forest-labs/FLUX.1-schnell`")
    );
}

#[test]
fn bad_repo_ids_inside_components() {
    assert_eq!(
        summary(&with_component("    hf_repo: a--b/c/vae\n")),
        [
            "4:14: invalid repo id `a--b/c` in `hf_repo`: the organisation contains `--` or `..`, which the Hub forbids"
        ]
    );
    assert_eq!(
        summary(&with_component("    hf_repo: justaname\n")),
        [
            "4:14: invalid `hf_repo` `justaname`: expected ORG/NAME, optionally followed by /subfolder"
        ]
    );
    assert_eq!(
        summary(&with_component("    source: [a/b/c.json, x/y]\n")),
        ["4:26: `source` entry `x/y` needs ORG/NAME/path/in/repo"]
    );
}

#[test]
fn missing_repo_id() {
    let (message, help) = single("revision: main\n");
    assert_eq!(message, "1:1: missing `repo_id`");
    assert_eq!(
        help.as_deref(),
        Some("add `repo_id: ORG/NAME`, the base repo of the pipeline")
    );
}

#[test]
fn bad_revisions() {
    let cases = [
        ("a..b", "it contains `..`"),
        ("'has space'", "it contains a space"),
        (
            "/main",
            "it has an empty segment (a leading, trailing or doubled `/`)",
        ),
        ("x.lock", "it ends with `.lock` or `.`"),
        ("'a:b'", "it contains `:`"),
    ];
    for (revision, reason) in cases {
        let (message, help) = single(&format!("{BASE}revision: {revision}\n"));
        let shown = revision.trim_matches('\'');
        assert_eq!(
            message,
            format!("2:11: invalid revision `{shown}`: {reason}")
        );
        assert_eq!(
            help.as_deref(),
            Some("use a branch, a tag or a 40-hex commit hash, such as `main`")
        );
    }
    assert_eq!(
        summary(&with_component("    hf_repo: a/b\n    revision: 'a b'\n")),
        ["5:15: invalid revision `a b`: it contains a space"]
    );
    // Commit hashes, tags and PR refs are revisions.
    ok(&format!(
        "{BASE}revision: 462165984030d82259a11f4367a4eed129e94a7b\n"
    ));
    ok(&format!("{BASE}revision: refs/pr/12\n"));
    ok(&format!("{BASE}revision: v1.0\n"));
}

#[test]
fn bad_variants() {
    let (message, help) = single(&format!("{BASE}variant: fp16.safetensors\n"));
    assert_eq!(
        message,
        "2:10: invalid variant `fp16.safetensors`: it contains `.`; only letters, digits, `_` and `-` are allowed"
    );
    assert_eq!(
        help.as_deref(),
        Some("a variant is a token such as `fp16`, `bf16` or `non_ema`")
    );
    assert_eq!(
        summary(&with_component(
            "    hf_repo: a/b\n    variant: [bf16, 'fp 16', bf16, [x]]\n"
        )),
        [
            "5:21: invalid variant `fp 16`: it contains a space; only letters, digits, `_` and `-` are allowed",
            "5:30: variant `bf16` is listed twice",
            "5:36: a `variant` entry must be a name or null, found a list",
        ]
    );
    assert_eq!(
        summary(&with_component("    hf_repo: a/b\n    variant: []\n")),
        ["5:14: `variant` lists no variant"]
    );
    assert_eq!(
        summary(&format!("{BASE}variant: [fp16, null]\n")),
        ["2:10: the top-level `variant` is a single name, found a list"]
    );
}

#[test]
fn urls_must_be_https_except_to_loopback() {
    let (message, help) = single(&with_component(
        "    urls:\n      a.bin: http://example.com/a.bin\n",
    ));
    assert_eq!(
        message,
        "5:14: invalid URL `http://example.com/a.bin`: plain `http` is allowed only to a loopback host; use `https`"
    );
    assert_eq!(
        help.as_deref(),
        Some("URLs must use `https://` (plain `http://` only to localhost)")
    );
    assert_eq!(
        summary(&with_component(
            "    urls:\n      a.bin: ftp://example.com/a.bin\n      b.bin: 'https://example.com/a b'\n      c.bin: not a url\n"
        )),
        [
            "5:14: invalid URL `ftp://example.com/a.bin`: the scheme `ftp` is not supported; use `https`",
            "6:14: invalid URL `https://example.com/a b`: it contains a space; percent-encode it (a space is `%20`)",
            "7:14: invalid URL `not a url`: it contains a space; percent-encode it (a space is `%20`)",
        ]
    );
    ok(&with_component(
        "    urls:\n      a.bin: http://127.0.0.1:8080/a.bin\n      b.bin: http://localhost/b\n      c.bin: 'http://[::1]:9/c'\n",
    ));
}

#[test]
fn urls_of_registered_schemes_are_accepted_only_when_registered() {
    let text = with_component(
        "    urls:\n      a.safetensors: file:///models/a.safetensors\n      b.bin: s3://bucket/b.bin\n",
    );
    // Without options, both are refused.
    assert_eq!(summary(&text).len(), 2);
    // A reader that registered `file` accepts that scheme, and still refuses `s3`, naming `file`.
    let options = pipefetch_spec::ParseOptions::default().url_scheme("FILE");
    let errors = pipefetch_spec::parse_str_with(&text, "spec.yaml", &options)
        .expect_err("s3 is not registered");
    let errors: Vec<_> = errors.into_iter().collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].message,
        "invalid URL `s3://bucket/b.bin`: the scheme `s3` is not supported; use `https`"
    );
    assert_eq!(
        errors[0].help.as_deref(),
        Some("URLs must use `https://` (plain `http://` only to localhost), `file://`")
    );
    let options = options.url_scheme("s3");
    let spec =
        pipefetch_spec::parse_str_with(&text, "spec.yaml", &options).expect("both registered");
    let pipefetch_spec::ComponentSource::Urls { files, .. } = &spec.components["vae"] else {
        panic!("not urls: {:?}", spec.components["vae"]);
    };
    assert_eq!(files["a.safetensors"], "file:///models/a.safetensors");
}

#[test]
fn urls_keys_and_source_paths_must_be_safe_relative_paths() {
    assert_eq!(
        summary(&with_component(
            "    urls:\n      ../evil.bin: https://e.com/1\n      /etc/passwd: https://e.com/2\n      'a\\b': https://e.com/3\n      \"a\\0b\": https://e.com/4\n      a//b: https://e.com/5\n"
        )),
        [
            "5:7: invalid file name `../evil.bin` in `urls`: `..` segments are not allowed",
            "6:7: invalid file name `/etc/passwd` in `urls`: it is absolute; write it relative, without the leading `/`",
            "7:7: invalid file name `a\\b` in `urls`: it contains a backslash; separate folders with `/`",
            "8:7: invalid file name `a\0b` in `urls`: it contains a NUL character",
            "9:7: invalid file name `a//b` in `urls`: it has an empty segment (a doubled or trailing `/`)",
        ]
    );
    assert_eq!(
        summary(&with_component(
            "    source:\n      - a/b/../c\n      - a/b//c\n      - a/b/c\\d\n"
        )),
        [
            "5:9: invalid path `../c` in `source` entry `a/b/../c`: `..` segments are not allowed",
            "6:9: invalid path `/c` in `source` entry `a/b//c`: it is absolute; write it relative, without the leading `/`",
            "7:9: invalid path `c\\d` in `source` entry `a/b/c\\d`: it contains a backslash; separate folders with `/`",
        ]
    );
    assert_eq!(
        summary(&with_component("    hf_repo: a/b/../vae\n")),
        ["4:14: invalid subfolder `../vae` in `hf_repo`: `..` segments are not allowed"]
    );
}

#[test]
fn sha256_pins() {
    let hash = "0f1e".repeat(16);
    assert_eq!(
        summary(&with_component(&format!(
            "    urls: {{model.safetensors: 'https://e.com/m'}}\n    sha256:\n      model.safetensor: {hash}\n      model.safetensors: 0f1e...\n"
        ))),
        [
            "6:7: `sha256` pins `model.safetensor`, which is not a file of `urls`",
            "7:26: invalid SHA-256 for `model.safetensors`: a SHA-256 is 64 hexadecimal digits, this is 7 characters",
        ]
    );
    let upper = "0F1E".repeat(16);
    let spec = ok(&with_component(&format!(
        "    urls: {{model.safetensors: 'https://e.com/m'}}\n    sha256: {{model.safetensors: {upper}}}\n"
    )));
    let pipefetch_spec::ComponentSource::Urls { sha256, .. } = &spec.components["vae"] else {
        panic!("{spec:?}");
    };
    // Pins are stored lowercase, the form hash functions print.
    assert_eq!(sha256["model.safetensors"], hash);
}

#[test]
fn bad_component_names() {
    assert_eq!(
        summary(&format!(
            "{BASE}components:\n  _class_name: null\n  2vae: null\n  my-vae: null\n"
        )),
        [
            "3:3: invalid component name `_class_name`: names starting with `_` are reserved by model_index.json (`_class_name`, ...)",
            "4:3: invalid component name `2vae`: it must start with a letter",
            "5:3: invalid component name `my-vae`: it contains `-`; only letters, digits and `_` are allowed",
        ]
    );
}

#[test]
fn over_one_mebibyte() {
    let text = format!("{BASE}#{}\n", "x".repeat(1024 * 1024));
    let diagnostics = errors(&text).into_vec();
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(
        diagnostics[0].message,
        format!(
            "`spec.yaml` is {} bytes, over the 1 MiB limit for a spec",
            text.len()
        )
    );
    assert_eq!(diagnostics[0].line, 0);
    // Exactly 1 MiB is still accepted.
    let padding = 1024 * 1024 - BASE.len() - 2;
    ok(&format!("{BASE}#{}\n", "x".repeat(padding)));
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let diagnostics = errors(&format!("{BASE}components:\n  vae: {{hf_repo: a/b\n")).into_vec();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert!(
        diagnostics[0].message.starts_with("invalid YAML: "),
        "{}",
        diagnostics[0].message
    );
    assert_eq!(diagnostics[0].message, "invalid YAML: unclosed bracket '{'");
    assert_eq!(diagnostics[0].line, 3, "{diagnostics:#?}");
}

#[test]
fn structural_problems() {
    assert_eq!(summary(""), ["1:1: the spec is empty"]);
    assert_eq!(summary("# only a comment\n"), ["1:1: the spec is empty"]);
    assert_eq!(
        summary("- a\n"),
        ["1:1: a spec must be a mapping of keys such as `repo_id:`, found a list"]
    );
    assert_eq!(
        summary(&format!("{BASE}---\n{BASE}")),
        ["2:1: a spec holds one YAML document, this is a second one"]
    );
    assert_eq!(
        summary(&format!("{BASE}name: &n x\nrevision: *n\n")),
        ["3:11: YAML aliases (`*name`) are not supported in a spec"]
    );
    assert_eq!(
        summary(&format!("{BASE}components: [vae]\n")),
        ["2:13: `components` must be a mapping from component name to source, found a list"]
    );
    assert_eq!(
        summary(&format!("{BASE}model_index: [a]\n")),
        ["2:14: `model_index` must be a path or a mapping, found a list"]
    );
    assert_eq!(
        summary(&format!("{BASE}name: 'my spec'\n")),
        [
            "2:7: invalid name `my spec`: it contains a space; only letters, digits, `_`, `-` and `.` are allowed"
        ]
    );
    assert_eq!(
        summary(&format!("{BASE}revision:\n")),
        ["2:9: `revision` needs a value"]
    );
}

#[test]
fn all_problems_are_reported_at_once_in_source_order() {
    let yaml = "\
repo_id: stabilityai/sdxl
revision: a..b
components:
  vae:
    hf_rpo: a/b
  unet:
    hf_repo: a/b
    local_path: ./unet
  text_encoder:
    urls: {model.safetensors: 'http://example.com/m'}
";
    assert_eq!(
        summary(yaml),
        [
            "2:11: invalid revision `a..b`: it contains `..`",
            "5:5: unknown key `hf_rpo` in component `vae`",
            "8:5: component `unet` has more than one source: `hf_repo` and `local_path`",
            "10:31: invalid URL `http://example.com/m`: plain `http` is allowed only to a loopback host; use `https`",
        ]
    );
}

#[test]
fn a_typo_reads_like_rustc() {
    let yaml = "\
repo_id: stabilityai/stable-diffusion-xl-base-1.0
components:
  vae:
    hf_repo: madebyollin/sdxl-vae-fp16-fix
    varaint: fp16
";
    assert_eq!(
        errors(yaml).to_string(),
        "error: unknown key `varaint` in component `vae`\n --> spec.yaml:5:5\n  |\n5 |     varaint: fp16\n  |     ^^^^^^^\n  = help: did you mean `variant`?\n"
    );
    let colored = errors(yaml).render(true);
    assert!(colored.starts_with("\x1b[1;31merror\x1b[0m"), "{colored:?}");
}

#[test]
fn many_problems_are_capped() {
    let mut yaml = format!("{BASE}components:\n");
    for index in 0..150 {
        yaml.push_str(&format!("  c{index}: {{}}\n"));
    }
    let diagnostics = errors(&yaml).into_vec();
    assert_eq!(diagnostics.len(), 101);
    assert_eq!(diagnostics[100].message, "50 more problems not shown");
    assert_eq!(diagnostics[0].message, "component `c0` has no source");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!(
        "{BASE}model_index: {}{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let diagnostics = errors(&deep).into_vec();
    assert_eq!(diagnostics.len(), 1);
    assert!(
        diagnostics[0].message.starts_with("invalid YAML: "),
        "{diagnostics:?}"
    );
}

#[test]
fn large_lists_are_checked_quickly() {
    // Quadratic duplicate checks would take minutes here.
    let mut yaml = format!("{BASE}components:\n  vae:\n    source:\n");
    let mut index = 0;
    while yaml.len() < 1000 * 1024 {
        yaml.push_str(&format!("      - a/b/f{index}.json\n"));
        index += 1;
    }
    let spec = ok(&yaml);
    let pipefetch_spec::ComponentSource::Files { files, .. } = &spec.components["vae"] else {
        panic!()
    };
    assert_eq!(files.len(), index);
}

#[test]
fn missing_space_after_a_key() {
    let (message, help) = single("repo_id:stabilityai/sdxl\nvariant: fp16\n");
    assert_eq!(message, "1:9: missing space after `repo_id:`");
    assert_eq!(
        help.as_deref(),
        Some("YAML needs a space between the colon and the value: `repo_id: stabilityai/sdxl`")
    );
    // A URL's colon is not a key's.
    ok(&with_component(
        "    urls:\n      a.bin: https://example.com/a\n",
    ));
}

#[test]
fn an_empty_component_is_not_a_removal() {
    let (message, help) = single(&format!("{BASE}components:\n  vae:\n"));
    assert_eq!(message, "3:3: component `vae` is empty");
    assert_eq!(
        help.as_deref(),
        Some("give it a source, indented under `vae:`, or write `vae: null` to drop it")
    );
    for removal in ["null", "~", "Null", "NULL"] {
        let spec = ok(&format!("{BASE}components:\n  vae: {removal}\n"));
        assert_eq!(
            spec.components["vae"],
            pipefetch_spec::ComponentSource::Removed
        );
    }
    assert_eq!(
        summary(&with_component("    hf_repo: a/b\n    variant:\n")),
        ["5:12: `variant` needs a value"]
    );
}

#[test]
fn under_indented_component_keys() {
    assert_eq!(
        summary(&format!("{BASE}components:\n  vae:\n  hf_repo: a/b\n")),
        [
            "3:3: component `vae` is empty",
            "4:3: `hf_repo` is not a component name",
        ]
    );
}

#[test]
fn pasted_hub_addresses_get_the_right_spelling() {
    let (message, help) = single(&with_component(
        "    hf_repo: https://huggingface.co/madebyollin/sdxl-vae-fp16-fix/tree/main\n",
    ));
    assert_eq!(
        message,
        "4:14: `hf_repo` takes ORG/NAME[/subfolder], not a URL"
    );
    assert_eq!(
        help.as_deref(),
        Some("write `hf_repo: madebyollin/sdxl-vae-fp16-fix`")
    );
    let (message, help) = single(&with_component(
        "    hf_repo: https://huggingface.co/cozy-creator/FLUX.1-schnell-8bit/tree/v2/transformer\n",
    ));
    assert_eq!(
        message,
        "4:14: `hf_repo` takes ORG/NAME[/subfolder], not a URL"
    );
    assert_eq!(
        help.as_deref(),
        Some("write `hf_repo: cozy-creator/FLUX.1-schnell-8bit/transformer` and `revision: v2`")
    );
    let (message, help) = single(&with_component(
        "    source:\n      - https://huggingface.co/madebyollin/sdxl-vae-fp16-fix/blob/main/config.json\n",
    ));
    assert_eq!(
        message,
        "5:9: `source` entries are ORG/NAME/path/in/repo, not URLs"
    );
    assert_eq!(
        help.as_deref(),
        Some("write `- madebyollin/sdxl-vae-fp16-fix/config.json`")
    );
}

#[test]
fn crlf_line_ends_and_a_byte_order_mark_are_fine() {
    let yaml = "\u{feff}repo_id: a/b\r\ncomponents:\r\n  vae:\r\n    hf_rpo: a/b\r\n";
    let diagnostics = errors(yaml);
    assert_eq!(diagnostics.error_count(), 1);
    assert_eq!(
        diagnostics.to_string(),
        "error: unknown key `hf_rpo` in component `vae`\n --> spec.yaml:4:5\n  |\n4 |     hf_rpo: a/b\n  |     ^^^^^^\n  = help: did you mean `hf_repo`?\n"
    );
    ok("\u{feff}repo_id: a/b\r\nrevision: main\r\n");
}
