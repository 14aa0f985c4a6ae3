//! What a URL's answer must look like to be weights: its content type, its first bytes, the
//! safetensors framing, and the error (with what to do) when it is a page instead.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use super::SNIFF_BYTES;
use crate::error::Error;

/// The largest safetensors header we believe in (the format's own readers cap it at 100 MB).
const MAX_SAFETENSORS_HEADER: u64 = 100 << 20;

/// File names (by extension) that hold model weights.
const WEIGHT_EXTENSIONS: &[&str] = &[
    "safetensors",
    "sft",
    "bin",
    "ckpt",
    "pt",
    "pth",
    "gguf",
    "ggml",
    "onnx",
    "h5",
    "msgpack",
    "pb",
    "tflite",
    "ot",
    "npz",
    "pkl",
];

/// Does this file name denote weights (safetensors, bin, ckpt, pt, pth, gguf, onnx…)?
pub fn expects_weights(name: &str) -> bool {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    base.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty()
            && WEIGHT_EXTENSIONS
                .iter()
                .any(|w| ext.eq_ignore_ascii_case(w))
    })
}

/// Why `content_type` is not a weights file, if it says so.
pub(super) fn refused_content_type(content_type: Option<&str>) -> Option<String> {
    let mime = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    let what = match mime.as_str() {
        "text/html" | "application/xhtml+xml" => "an HTML page",
        "application/json" | "text/json" | "application/problem+json" => "a JSON document",
        "text/xml" | "application/xml" => "an XML document",
        _ => return None,
    };
    Some(format!("{what} (Content-Type: {mime})"))
}

/// Whether a file's first bytes are a page or a JSON document rather than binary weights.
pub(super) fn sniff(head: &[u8]) -> Option<&'static str> {
    let window = &head[..head.len().min(SNIFF_BYTES)];
    // Weights are binary: their first bytes hold NULs (a safetensors length, a pickle, a zip or
    // GGUF header). Text without any cannot be a model.
    if window.contains(&0) {
        return None;
    }
    let text = window.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(window);
    let start = text.iter().position(|b| !b.is_ascii_whitespace())?;
    let text = &text[start..];
    let lower: Vec<u8> = text.iter().take(64).map(u8::to_ascii_lowercase).collect();
    match lower.first() {
        Some(b'<') => {
            let html = [
                b"<!doctype html".as_slice(),
                b"<html",
                b"<head",
                b"<body",
                b"<!--",
            ]
            .iter()
            .any(|p| lower.starts_with(p))
                || window.windows(5).any(|w| w.eq_ignore_ascii_case(b"<html"));
            if html {
                Some("an HTML page")
            } else if lower.starts_with(b"<?xml")
                || lower
                    .get(1)
                    .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'!')
            {
                Some("an XML or HTML document")
            } else {
                None
            }
        }
        Some(b'{') | Some(b'[') => Some("a JSON document"),
        _ => None,
    }
}

/// Why a complete file named `name` is not weights, if it is not.
pub(super) fn weights_problem(
    file: &mut File,
    head: &[u8],
    len: u64,
    name: &str,
) -> Option<String> {
    if len == 0 {
        return Some("an empty file".to_string());
    }
    if let Some(what) = sniff(head) {
        return Some(what.to_string());
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    if matches!(ext.as_deref(), Some("safetensors" | "sft")) {
        return safetensors_problem(file, head, len);
    }
    None
}

/// Checks the safetensors framing: an 8-byte little-endian length N (below 100 MiB), then an
/// N-byte JSON header `{…}` (padded with spaces), all inside the file.
pub(super) fn safetensors_problem(file: &mut File, head: &[u8], len: u64) -> Option<String> {
    let bad = |why: String| Some(format!("a file that is not in safetensors format ({why})"));
    let (Some(prefix), Some(first)) = (head.get(..8), head.get(8)) else {
        return bad(format!("only {len} bytes"));
    };
    let mut n = [0u8; 8];
    n.copy_from_slice(prefix);
    let n = u64::from_le_bytes(n);
    if !(2..MAX_SAFETENSORS_HEADER).contains(&n) {
        return bad(format!("its header length would be {n} bytes"));
    }
    if 8 + n > len {
        return bad(format!("its header claims {n} bytes, the file has {len}"));
    }
    if *first != b'{' {
        return bad("the header does not start with `{`".to_string());
    }
    let tail = n.min(64);
    let mut buf = vec![0u8; tail as usize];
    let read = file
        .seek(SeekFrom::Start(8 + n - tail))
        .and_then(|_| file.read_exact(&mut buf));
    if read.is_err() {
        return bad("its header could not be read".to_string());
    }
    match buf.iter().rev().find(|b| **b != b' ') {
        Some(b'}') => None,
        _ => bad("the header does not end with `}`".to_string()),
    }
}

/// The error for a refused body, with what to do about it.
pub(super) fn not_weights(
    id: &str,
    civitai: bool,
    name: &str,
    authenticated: bool,
    what: String,
) -> Error {
    let hint = if civitai && !authenticated {
        "set CIVITAI_TOKEN to a civitai.com API key (https://civitai.com/user/account): without one, some models answer with a login or error page instead of the file".to_string()
    } else if civitai {
        "the civitai API key was sent, but the server still answered with a page: check that CIVITAI_TOKEN is valid and that the model can be downloaded by your account".to_string()
    } else {
        format!(
            "the URL returned {what} (a login or error page?): open it in a browser, and use a direct download link"
        )
    };
    Error::NotWeights {
        url: id.to_string(),
        name: name.to_string(),
        what,
        hint,
    }
}
