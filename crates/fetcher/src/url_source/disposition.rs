//! The file name a server gives in `Content-Disposition`, reduced to a safe bare name.

/// The file name in a `Content-Disposition` header (`filename*=UTF-8''…` preferred over
/// `filename=…`), reduced to a bare name: no folders, no `..`, no control characters.
pub(super) fn disposition_filename(value: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for param in split_params(value) {
        let Some((k, v)) = param.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "filename*" {
            let mut parts = v.splitn(3, '\'');
            if let (Some(charset), Some(_lang), Some(encoded)) =
                (parts.next(), parts.next(), parts.next())
                && (charset.eq_ignore_ascii_case("utf-8") || charset.is_empty())
            {
                extended = percent_decode(encoded).and_then(|b| String::from_utf8(b).ok());
            }
        } else if k == "filename" {
            plain = Some(unquote(v));
        }
    }
    let name = extended.or(plain)?;
    let base = name.rsplit(['/', '\\']).next().unwrap_or(&name).trim();
    let bad = base.is_empty() || base == "." || base == ".." || base.chars().any(char::is_control);
    (!bad).then(|| base.to_string())
}

/// Splits header parameters on `;` outside quoted strings.
pub(super) fn split_params(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in value.chars() {
        match c {
            _ if escaped => {
                escaped = false;
                cur.push(c);
            }
            '\\' if quoted => {
                escaped = true;
                cur.push(c);
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// `"a \"b\""` → `a "b"`; an unquoted token as is.
pub(super) fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return v.to_string();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `%XX` decoding; `None` on a malformed escape.
pub(super) fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}
