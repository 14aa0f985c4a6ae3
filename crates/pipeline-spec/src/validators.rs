//! Single-value validators shared with the other pipefetch crates.
//!
//! Each returns `Err(reason)` with a short phrase that completes a sentence such as
//! "invalid repo id `x`: REASON". Callers add the value and the context themselves, so the
//! same rule reads naturally in a spec diagnostic, a CLI argument error or a cache lookup.

/// The longest organisation or repository name the Hub accepts.
pub const MAX_REPO_PART_LEN: usize = 96;

/// The longest revision accepted. Git itself has no limit, but a revision also becomes a file
/// name under `refs/` in the cache, and file systems stop at 255 bytes.
pub const MAX_REVISION_LEN: usize = 255;

/// The longest variant accepted; real variants are short tokens such as `fp16` or `non_ema`.
pub const MAX_VARIANT_LEN: usize = 64;

/// Checks a Hub repo id: `ORG/NAME`, each part 1 to 96 letters, digits, `-`, `_` or `.`,
/// neither starting nor ending with `-` or `.`, and without `--` or `..`.
///
/// ```
/// assert!(pipefetch_spec::validate_repo_id("stabilityai/stable-diffusion-xl-base-1.0").is_ok());
/// assert_eq!(
///     pipefetch_spec::validate_repo_id("gpt2").unwrap_err(),
///     "expected ORG/NAME with exactly one `/`"
/// );
/// ```
pub fn validate_repo_id(repo_id: &str) -> Result<(), String> {
    let mut parts = repo_id.split('/');
    let (Some(org), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("expected ORG/NAME with exactly one `/`".to_owned());
    };
    validate_repo_part(org, "organisation")?;
    validate_repo_part(name, "name")
}

fn validate_repo_part(part: &str, what: &str) -> Result<(), String> {
    if part.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if let Some(bad) = part
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "the {what} contains {}; only letters, digits, `-`, `_` and `.` are allowed",
            describe_char(bad)
        ));
    }
    if part.len() > MAX_REPO_PART_LEN {
        return Err(format!(
            "the {what} is {} characters long; the Hub allows at most {MAX_REPO_PART_LEN}",
            part.len()
        ));
    }
    if part.contains("--") || part.contains("..") {
        return Err(format!(
            "the {what} contains `--` or `..`, which the Hub forbids"
        ));
    }
    if part.starts_with(['-', '.']) || part.ends_with(['-', '.']) {
        return Err(format!("the {what} starts or ends with `-` or `.`"));
    }
    Ok(())
}

/// Checks a revision: a branch, a tag or a commit hash, following git's rules for ref names
/// (no `..`, no spaces or control characters, none of `~ ^ : ? * [ \`, no `@{`, no empty or
/// dot-leading segment, not ending in `.lock`), at most 255 bytes.
///
/// ```
/// assert!(pipefetch_spec::validate_revision("main").is_ok());
/// assert!(pipefetch_spec::validate_revision("refs/pr/12").is_ok());
/// assert!(pipefetch_spec::validate_revision("../../etc").is_err());
/// ```
pub fn validate_revision(revision: &str) -> Result<(), String> {
    if revision.is_empty() {
        return Err("it is empty".to_owned());
    }
    if revision.len() > MAX_REVISION_LEN {
        return Err(format!(
            "it is {} bytes long; at most {MAX_REVISION_LEN} are allowed",
            revision.len()
        ));
    }
    if let Some(bad) = revision.chars().find(|c| {
        c.is_control() || c.is_whitespace() || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\')
    }) {
        return Err(format!("it contains {}", describe_char(bad)));
    }
    if revision.contains("..") {
        return Err("it contains `..`".to_owned());
    }
    if revision.contains("@{") || revision == "@" {
        return Err("`@` alone and `@{` are reserved by git".to_owned());
    }
    if revision.split('/').any(str::is_empty) {
        return Err("it has an empty segment (a leading, trailing or doubled `/`)".to_owned());
    }
    if revision.split('/').any(|segment| segment.starts_with('.')) {
        return Err("a segment starts with `.`".to_owned());
    }
    if revision.ends_with(".lock") || revision.ends_with('.') {
        return Err("it ends with `.lock` or `.`".to_owned());
    }
    Ok(())
}

/// Checks a variant name: 1 to 64 letters, digits, `_` or `-` (such as `fp16` or `non_ema`).
///
/// The variant is spliced into file names (`model.fp16.safetensors`), so a `.` or `/` would
/// change which file is meant.
///
/// ```
/// assert!(pipefetch_spec::validate_variant("fp16").is_ok());
/// assert!(pipefetch_spec::validate_variant("fp16.safetensors").is_err());
/// ```
pub fn validate_variant(variant: &str) -> Result<(), String> {
    if variant.is_empty() {
        return Err("it is empty".to_owned());
    }
    if let Some(bad) = variant
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
    {
        return Err(format!(
            "it contains {}; only letters, digits, `_` and `-` are allowed",
            describe_char(bad)
        ));
    }
    if variant.len() > MAX_VARIANT_LEN {
        return Err(format!(
            "it is {} characters long; at most {MAX_VARIANT_LEN} are allowed",
            variant.len()
        ));
    }
    Ok(())
}

/// Checks a relative path inside a repo or a download folder: `/`-separated, not empty, not
/// absolute, no empty, `.` or `..` segment, no backslash, no NUL or other control character,
/// and no drive prefix such as `C:`.
///
/// These paths are joined to a local directory, so each rule closes a way to write outside it.
///
/// ```
/// assert!(pipefetch_spec::validate_relative_path("vae/config.json").is_ok());
/// assert_eq!(
///     pipefetch_spec::validate_relative_path("../x").unwrap_err(),
///     "`..` segments are not allowed"
/// );
/// ```
pub fn validate_relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("it is empty".to_owned());
    }
    if path.contains('\0') {
        return Err("it contains a NUL character".to_owned());
    }
    if let Some(bad) = path.chars().find(|c| c.is_control()) {
        return Err(format!("it contains {}", describe_char(bad)));
    }
    if path.contains('\\') {
        return Err("it contains a backslash; separate folders with `/`".to_owned());
    }
    if path.starts_with('/') {
        return Err("it is absolute; write it relative, without the leading `/`".to_owned());
    }
    let first = path.split('/').next().unwrap_or_default();
    let mut chars = first.chars();
    if let (Some(letter), Some(':')) = (chars.next(), chars.next())
        && letter.is_ascii_alphabetic()
    {
        return Err("it starts with a drive prefix such as `C:`".to_owned());
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err("it has an empty segment (a doubled or trailing `/`)".to_owned()),
            "." => return Err("`.` segments are not allowed".to_owned()),
            ".." => return Err("`..` segments are not allowed".to_owned()),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a component name: a letter followed by letters, digits or `_`, at most 64 characters.
///
/// Names are Python attribute names in diffusers and folder names on disk; names starting
/// with `_` are reserved by `model_index.json` (`_class_name`, `_diffusers_version`).
///
/// ```
/// assert!(pipefetch_spec::validate_component_name("text_encoder_2").is_ok());
/// assert!(pipefetch_spec::validate_component_name("_class_name").is_err());
/// ```
pub fn validate_component_name(name: &str) -> Result<(), String> {
    let Some(first) = name.chars().next() else {
        return Err("it is empty".to_owned());
    };
    if first == '_' {
        return Err(
            "names starting with `_` are reserved by model_index.json (`_class_name`, ...)"
                .to_owned(),
        );
    }
    if !first.is_ascii_alphabetic() {
        return Err("it must start with a letter".to_owned());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(format!(
            "it contains {}; only letters, digits and `_` are allowed",
            describe_char(bad)
        ));
    }
    if name.len() > 64 {
        return Err("it is longer than 64 characters".to_owned());
    }
    Ok(())
}

/// Checks a spec name: 1 to 128 letters, digits, `_`, `-` or `.`, not starting with `.` or `-`.
///
/// The name may become a folder name, so it must be a single safe path segment.
pub fn validate_spec_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".to_owned());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "it contains {}; only letters, digits, `_`, `-` and `.` are allowed",
            describe_char(bad)
        ));
    }
    if name.starts_with(['.', '-']) {
        return Err("it starts with `.` or `-`".to_owned());
    }
    if name.len() > 128 {
        return Err("it is longer than 128 characters".to_owned());
    }
    Ok(())
}

/// Checks a download URL: `https`, or plain `http` only to a loopback host (`localhost`,
/// `127.0.0.0/8`, `[::1]`), with a host and no whitespace.
///
/// ```
/// assert!(pipefetch_spec::validate_url("https://civitai.com/api/download/models/1234").is_ok());
/// assert!(pipefetch_spec::validate_url("http://127.0.0.1:8080/x").is_ok());
/// assert!(pipefetch_spec::validate_url("http://example.com/x").is_err());
/// ```
pub fn validate_url(url: &str) -> Result<(), String> {
    if let Some(bad) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "it contains {}; percent-encode it (a space is `%20`)",
            describe_char(bad)
        ));
    }
    let parsed = url::Url::parse(url).map_err(|err| format!("it is not a valid URL ({err})"))?;
    let host = parsed.host();
    match parsed.scheme() {
        "https" if host.is_some() => Ok(()),
        "https" => Err("it has no host".to_owned()),
        "http" => match host {
            Some(url::Host::Domain(domain)) if domain.eq_ignore_ascii_case("localhost") => Ok(()),
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => Ok(()),
            _ => Err("plain `http` is allowed only to a loopback host; use `https`".to_owned()),
        },
        other => Err(format!(
            "the scheme `{other}` is not supported; use `https`"
        )),
    }
}

/// Checks a SHA-256 pin: exactly 64 hexadecimal digits.
pub fn validate_sha256(hash: &str) -> Result<(), String> {
    if hash.len() != 64 {
        return Err(format!(
            "a SHA-256 is 64 hexadecimal digits, this is {} characters",
            hash.chars().count()
        ));
    }
    if let Some(bad) = hash.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "it contains {}, which is not hexadecimal",
            describe_char(bad)
        ));
    }
    Ok(())
}

/// Names a character for a message: printable ones quoted, others by code point.
pub(crate) fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\t' => "a tab".to_owned(),
        '`' => "'`'".to_owned(),
        c if c.is_control() || c.is_whitespace() => format!("U+{:04X}", u32::from(c)),
        c => format!("`{c}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_id_rules() {
        assert_eq!(validate_repo_id("a/b"), Ok(()));
        assert_eq!(validate_repo_id("cozy-creator/FLUX.1-schnell-8bit"), Ok(()));
        assert_eq!(
            validate_repo_id("a/b/c"),
            Err("expected ORG/NAME with exactly one `/`".to_owned())
        );
        assert_eq!(
            validate_repo_id("a--b/c"),
            Err("the organisation contains `--` or `..`, which the Hub forbids".to_owned())
        );
        assert_eq!(
            validate_repo_id("a/b..c"),
            Err("the name contains `--` or `..`, which the Hub forbids".to_owned())
        );
        assert_eq!(
            validate_repo_id("a/-b"),
            Err("the name starts or ends with `-` or `.`".to_owned())
        );
        assert_eq!(
            validate_repo_id(&format!("a/{}", "x".repeat(97))),
            Err("the name is 97 characters long; the Hub allows at most 96".to_owned())
        );
        assert!(validate_repo_id(&format!("a/{}", "x".repeat(96))).is_ok());
        assert_eq!(
            validate_repo_id("a/b c"),
            Err(
                "the name contains a space; only letters, digits, `-`, `_` and `.` are allowed"
                    .to_owned()
            )
        );
    }

    #[test]
    fn revision_rules() {
        for ok in [
            "main",
            "v1.0",
            "refs/pr/1",
            "0123456789abcdef0123456789abcdef01234567",
        ] {
            assert_eq!(validate_revision(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "a..b", "a b", "/main", "main/", "a//b", "x.lock", "@", "a@{1}", ".x",
        ] {
            assert!(validate_revision(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_path_rules() {
        assert_eq!(validate_relative_path("unet/config.json"), Ok(()));
        for bad in [
            "", "/abs", "a/../b", "a\\b", "a\0b", "a//b", "a/", "./a", "C:/x",
        ] {
            assert!(validate_relative_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn url_rules() {
        assert_eq!(validate_url("https://example.com/a"), Ok(()));
        assert_eq!(validate_url("http://localhost:8000/a"), Ok(()));
        assert_eq!(validate_url("http://[::1]/a"), Ok(()));
        assert_eq!(
            validate_url("ftp://example.com/a"),
            Err("the scheme `ftp` is not supported; use `https`".to_owned())
        );
        assert_eq!(
            validate_url("http://10.0.0.1/a"),
            Err("plain `http` is allowed only to a loopback host; use `https`".to_owned())
        );
    }
}
