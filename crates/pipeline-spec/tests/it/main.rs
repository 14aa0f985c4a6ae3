//! Integration tests for `pipeline-spec`: every rule with its exact message, the examples,
//! round trips, the checked-in JSON Schema, file loading and never-panic properties.

mod examples;
mod files;
mod properties;
mod rules;
mod schema;

use pipefetch_spec::{Diagnostics, PipelineSpec, parse_str};

/// Parses `yaml` as `spec.yaml`, expecting success.
pub fn ok(yaml: &str) -> PipelineSpec {
    match parse_str(yaml, "/specs/spec.yaml") {
        Ok(spec) => spec,
        Err(diagnostics) => panic!("expected a valid spec, got:\n{diagnostics}"),
    }
}

/// Parses `yaml` as `spec.yaml`, expecting diagnostics.
pub fn errors(yaml: &str) -> Diagnostics {
    match parse_str(yaml, "spec.yaml") {
        Ok(spec) => panic!("expected diagnostics, got {spec:?}"),
        Err(diagnostics) => diagnostics,
    }
}

/// `line:column: message` for each diagnostic: compact, exact assertions.
pub fn summary(yaml: &str) -> Vec<String> {
    errors(yaml)
        .iter()
        .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
        .collect()
}

/// The single diagnostic's message and help.
pub fn single(yaml: &str) -> (String, Option<String>) {
    let diagnostics = errors(yaml).into_vec();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    let d = &diagnostics[0];
    (
        format!("{}:{}: {}", d.line, d.column, d.message),
        d.help.clone(),
    )
}
