//! The checked-in JSON Schema must match the one generated from the types.

use std::path::Path;

#[test]
fn checked_in_schema_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/pipeline-spec.schema.json");
    let generated = pipefetch_spec::json_schema();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "schema/pipeline-spec.schema.json is out of date; regenerate it with\n    UPDATE_SCHEMA=1 cargo test -p pipefetch-spec --test it schema"
    );
}

#[test]
fn schema_describes_every_key() {
    let schema: serde_json::Value = serde_json::from_str(&pipefetch_spec::json_schema()).unwrap();
    let mut top: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    top.sort_unstable();
    let mut expected = pipefetch_spec::TOP_LEVEL_KEYS.to_vec();
    expected.sort_unstable();
    assert_eq!(top, expected);
    assert_eq!(schema["required"], serde_json::json!(["repo_id"]));
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    let text = pipefetch_spec::json_schema();
    for key in pipefetch_spec::COMPONENT_KEYS {
        assert!(
            text.contains(&format!("\"{key}\"")),
            "{key} missing from the schema"
        );
    }
}
