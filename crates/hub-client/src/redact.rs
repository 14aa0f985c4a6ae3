//! URLs as they may be shown: in errors, `Debug` output and log lines.
//!
//! A URL's query often is a credential. A presigned S3 or R2 URL (a fleet mirror's, or the
//! storage a civitai.com download redirects to) carries its signature and, with temporary
//! credentials, `X-Amz-Security-Token`; a CDN URL carries `Signature`, `Policy` or `sig`; some
//! APIs take `token=`. Anyone holding the whole URL may use it until it expires, and error
//! messages end up in logs, job dashboards and bug reports. So every URL this crate puts into an
//! error, a `Debug` output or a log line goes through [`redact_url`]: user info and fragment are
//! dropped, and the query keeps only the parameters known to be harmless (the Hub's listing
//! parameters); any other parameter is replaced, names and values alike, by one `<redacted>`
//! marker, so that a reader still sees that the URL had a query.

use url::Url;

/// Query parameters that never carry a credential: the Hub's listing and paging parameters.
const HARMLESS: [&str; 5] = ["recursive", "expand", "cursor", "blobs", "limit"];

/// The marker that replaces the parameters left out.
const MARKER: &str = "<redacted>";

/// `url` as it may be shown: without user info or fragment, and with only harmless query
/// parameters.
///
/// ```
/// use pipefetch_hub_client::{Url, redact_url};
///
/// let url = Url::parse("https://s3.example/b/k?X-Amz-Signature=abc&X-Amz-Security-Token=t").unwrap();
/// assert_eq!(redact_url(&url), "https://s3.example/b/k?<redacted>");
/// let listing = Url::parse("https://hub.example/api/models/a/b/tree/main?recursive=true").unwrap();
/// assert_eq!(redact_url(&listing), listing.as_str());
/// ```
pub fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Both fail only for URLs that cannot have user info (`data:`), which then have none.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_fragment(None);
    shown.set_query(None);
    let mut out = shown.to_string();
    if let Some(query) = url.query() {
        out.push_str(&redact_query(query));
    }
    out
}

/// [`redact_url`] for a URL held as text; text that does not parse as a URL loses everything
/// from its first `?` or `#`.
pub fn redact_url_str(text: &str) -> String {
    if let Ok(url) = Url::parse(text) {
        return redact_url(&url);
    }
    match text.find(['?', '#']) {
        Some(cut) => {
            let query = text[cut..].strip_prefix('?').unwrap_or("");
            let query = query.split('#').next().unwrap_or("");
            format!("{}{}", &text[..cut], redact_query(query))
        }
        None => text.to_string(),
    }
}

/// `?` and the harmless pairs of `query`, plus the marker when any pair was left out; empty
/// when nothing is left to show.
fn redact_query(query: &str) -> String {
    let pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    let kept: Vec<&str> = pairs
        .iter()
        .copied()
        .filter(|p| HARMLESS.contains(&p.split('=').next().unwrap_or_default()))
        .collect();
    let mut shown = kept.join("&");
    if kept.len() < pairs.len() {
        if !shown.is_empty() {
            shown.push('&');
        }
        shown.push_str(MARKER);
    }
    if shown.is_empty() {
        shown
    } else {
        format!("?{shown}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_harmless_parameters_are_shown() {
        let cases = [
            (
                "https://bucket.s3.amazonaws.com/blobs/sha256/ab?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20260101&X-Amz-Signature=deadbeef&X-Amz-Security-Token=FwoGZXIvYXdz",
                "https://bucket.s3.amazonaws.com/blobs/sha256/ab?<redacted>",
            ),
            (
                "https://hub.example/api/models/a/b/tree/main?recursive=true&expand=false&cursor=xyz",
                "https://hub.example/api/models/a/b/tree/main?recursive=true&expand=false&cursor=xyz",
            ),
            (
                "https://hub.example/api/models/a/b/tree/main?recursive=true&sig=s3cr3t",
                "https://hub.example/api/models/a/b/tree/main?recursive=true&<redacted>",
            ),
            (
                "https://user:pass@cdn.example/x?token=abc#frag",
                "https://cdn.example/x?<redacted>",
            ),
            ("https://hub.example/a/b", "https://hub.example/a/b"),
            ("https://hub.example/a/b?", "https://hub.example/a/b"),
        ];
        for (input, shown) in cases {
            assert_eq!(redact_url(&Url::parse(input).unwrap()), shown, "{input}");
            assert_eq!(redact_url_str(input), shown, "{input}");
        }
        // Not a URL: everything from the query on goes.
        assert_eq!(
            redact_url_str("/relative/path?Signature=abc#f"),
            "/relative/path?<redacted>"
        );
        assert_eq!(redact_url_str("no query here"), "no query here");
    }
}
