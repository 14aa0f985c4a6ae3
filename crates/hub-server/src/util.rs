//! Small helpers: URL encoding like Python's `quote`, query parsing, dates.

use std::time::{SystemTime, UNIX_EPOCH};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Python's `quote(s, safe="")`: everything but `A-Za-z0-9_.-~` is escaped.
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// Encodes one path segment or query value (a `/` becomes `%2F`).
pub(crate) fn quote(s: &str) -> String {
    utf8_percent_encode(s, STRICT).to_string()
}

/// Encodes a `/`-separated path segment by segment, like Python's `quote(path)`.
pub(crate) fn quote_path(path: &str) -> String {
    path.split('/').map(quote).collect::<Vec<_>>().join("/")
}

/// Decodes one path segment; `None` if the result is not UTF-8.
pub(crate) fn decode(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// Parses `a=1&b=2` (form encoding: `+` is a space). Undecodable pairs are skipped.
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(&k.replace('+', " "))?, decode(&v.replace('+', " "))?))
        })
        .collect()
}

/// The last value of `key` in a parsed query.
pub(crate) fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Python sends booleans as `True`/`False`; other clients send `true`/`1`.
pub(crate) fn truthy(v: Option<&str>) -> bool {
    matches!(
        v.map(|s| s.to_ascii_lowercase()).as_deref(),
        Some("true" | "1" | "yes")
    )
}

/// `2024-01-02T03:04:05.000Z`, the format of the Hub's `lastModified`.
pub(crate) fn iso8601(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Header values must be visible ASCII; anything else is replaced so a response is always built.
pub(crate) fn header_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_like_python() {
        assert_eq!(
            quote_path("subdir/file name #1.bin"),
            "subdir/file%20name%20%231.bin"
        );
        assert_eq!(quote("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(quote_path("é.txt"), "%C3%A9.txt");
    }

    #[test]
    fn query() {
        let q = parse_query("recursive=True&paths=a+b&paths=c%2Fd&x");
        assert_eq!(query_value(&q, "recursive"), Some("True"));
        assert!(truthy(query_value(&q, "recursive")));
        assert_eq!(
            q.iter()
                .filter(|(k, _)| k == "paths")
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>(),
            ["a b", "c/d"]
        );
        assert_eq!(query_value(&q, "x"), Some(""));
    }

    #[test]
    fn dates() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_709_251_199);
        assert_eq!(iso8601(t), "2024-02-29T23:59:59.000Z");
    }
}
