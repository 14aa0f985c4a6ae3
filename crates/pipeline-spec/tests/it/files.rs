//! Loading spec files: I/O problems become diagnostics, paths resolve against the file.

use std::path::PathBuf;

use pipefetch_spec::{ComponentSource, ModelIndexOverride, load_file};

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.yaml");
    let diagnostics = load_file(&path).unwrap_err().into_vec();
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].line, 0);
    assert!(
        diagnostics[0]
            .message
            .starts_with(&format!("cannot read `{}`: ", path.display())),
        "{}",
        diagnostics[0].message
    );
    assert_eq!(
        diagnostics[0].help.as_deref(),
        Some("check the path; specs are usually `.yaml` files")
    );
    assert_eq!(
        diagnostics[0].render(false).lines().nth(1),
        Some(format!(" --> {}", path.display()).as_str())
    );
}

#[test]
fn a_folder_is_not_a_spec() {
    let dir = tempfile::tempdir().unwrap();
    let diagnostics = load_file(dir.path()).unwrap_err().into_vec();
    assert_eq!(
        diagnostics[0].help.as_deref(),
        Some("pass a spec file, not a folder")
    );
}

#[test]
fn not_utf8_points_at_the_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.yaml");
    std::fs::write(&path, b"repo_id: a/b\nname: caf\xe9\n").unwrap();
    let diagnostics = load_file(&path).unwrap_err().into_vec();
    assert_eq!(
        diagnostics[0].message,
        format!("`{}` is not UTF-8 text (line 2, column 10)", path.display())
    );
    assert_eq!((diagnostics[0].line, diagnostics[0].column), (2, 10));
    assert_eq!(
        diagnostics[0].help.as_deref(),
        Some("save the spec as UTF-8")
    );
}

#[test]
fn over_one_mebibyte_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, vec![b'#'; 1024 * 1024 + 1]).unwrap();
    let diagnostics = load_file(&path).unwrap_err().into_vec();
    assert_eq!(
        diagnostics[0].message,
        format!(
            "`{}` is 1048577 bytes, over the 1 MiB limit for a spec",
            path.display()
        )
    );
}

#[test]
fn relative_paths_resolve_against_the_spec_folder_and_name_defaults_to_the_stem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("specs")).unwrap();
    let path = dir.path().join("specs/my pipeline.yaml");
    std::fs::write(
        &path,
        "repo_id: a/b\nmodel_index: ../index.json\ncomponents:\n  unet: {local_path: unet}\n  vae: {local_path: /opt/vae}\n",
    )
    .unwrap();
    let spec = load_file(&path).unwrap();
    let specs = std::path::absolute(dir.path().join("specs")).unwrap();
    assert_eq!(spec.name, "my-pipeline");
    assert_eq!(
        spec.model_index,
        Some(ModelIndexOverride::Path {
            raw: "../index.json".to_owned(),
            resolved: specs.join("../index.json"),
        })
    );
    assert_eq!(
        spec.components["unet"],
        ComponentSource::LocalPath {
            path: PathBuf::from("unet"),
            resolved: specs.join("unet"),
        }
    );
    assert_eq!(
        spec.components["vae"],
        ComponentSource::LocalPath {
            path: PathBuf::from("/opt/vae"),
            resolved: PathBuf::from("/opt/vae"),
        }
    );
}

#[test]
fn diagnostics_name_the_file_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.yaml");
    std::fs::write(&path, "repo_id: a/b\nrevison: main\n").unwrap();
    let diagnostics = load_file(&path).unwrap_err();
    assert_eq!(
        diagnostics.to_string(),
        format!(
            "error: unknown key `revison`\n --> {}:2:1\n  |\n2 | revison: main\n  | ^^^^^^^\n  = help: did you mean `revision`?\n",
            path.display()
        )
    );
}

#[test]
fn tilde_user_paths_are_refused() {
    let diagnostics = pipefetch_spec::parse_str(
        "repo_id: a/b\ncomponents:\n  unet: {local_path: ~bob/unet}\n",
        "x.yaml",
    )
    .unwrap_err()
    .into_vec();
    assert_eq!(
        diagnostics[0].message,
        "invalid `local_path` path `~bob/unet`: `~user` paths are not supported"
    );
}

#[test]
fn urls_are_not_local_paths() {
    let diagnostics = pipefetch_spec::parse_str(
        "repo_id: a/b\nmodel_index: https://e.com/model_index.json\ncomponents:\n  unet: {local_path: 'https://e.com/unet'}\n",
        "x.yaml",
    )
    .unwrap_err()
    .into_vec();
    let got: Vec<(&str, Option<&str>)> = diagnostics
        .iter()
        .map(|d| (d.message.as_str(), d.help.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "invalid `model_index` path `https://e.com/model_index.json`: it is a URL, not a local path",
                Some("download the file and give its local path, or write the content inline")
            ),
            (
                "invalid `local_path` path `https://e.com/unet`: it is a URL, not a local path",
                Some("to download files from URLs, use `urls:`")
            ),
        ]
    );
}
