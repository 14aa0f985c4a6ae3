//! The checked-in JSON Schema of lockfiles must match the one generated from the types.

use std::path::Path;

#[test]
fn checked_in_lock_schema_is_current() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/pipefetch-lock.schema.json");
    let generated = pipefetch_fetcher::lock::json_schema();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).expect("write schema");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "schema/pipefetch-lock.schema.json is out of date; regenerate it with\n    UPDATE_SCHEMA=1 cargo test -p pipefetch-fetcher --test it schema"
    );
    let schema: serde_json::Value = serde_json::from_str(&generated).expect("json");
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    required.sort_unstable();
    assert_eq!(
        required,
        ["files", "model_index", "name", "spec_sha256", "version"]
    );
}
