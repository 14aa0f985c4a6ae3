//! The one place where environment variables are read.
//!
//! Every `HF_*` variable the Hub tools agree on, plus pipefetch's own knobs, is read here and nowhere
//! else, so that defaults and spellings stay identical to `huggingface_hub` (its `constants.py`).
//!
//! | variable | field | default |
//! |---|---|---|
//! | `HF_ENDPOINT` | [`HfEnv::endpoint`] | `https://huggingface.co` (a trailing `/` is stripped) |
//! | `HUGGINGFACE_CO_STAGING` | picks `https://hub-ci.huggingface.co` when `HF_ENDPOINT` is unset | false |
//! | `HF_HOME` | [`HfEnv::hf_home`] | `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface` |
//! | `HF_HUB_CACHE`, legacy `HUGGINGFACE_HUB_CACHE` | [`HfEnv::hub_cache`] | `$HF_HOME/hub` |
//! | `HF_TOKEN`, legacy `HUGGING_FACE_HUB_TOKEN` | [`HfEnv::token`] | read from the token file |
//! | `HF_TOKEN_PATH` | where the token file is | `$HF_HOME/token` |
//! | `HF_HUB_OFFLINE`, `TRANSFORMERS_OFFLINE` | [`HfEnv::offline`] | false |
//! | `HF_HUB_DISABLE_IMPLICIT_TOKEN` | [`HfEnv::disable_implicit_token`] | false |
//! | `HF_HUB_DISABLE_SYMLINKS` | [`HfEnv::disable_symlinks`] | false |
//! | `HF_HUB_ETAG_TIMEOUT` | [`HfEnv::etag_timeout`] | 10 s |
//! | `HF_HUB_DOWNLOAD_TIMEOUT` | [`HfEnv::download_timeout`] | 10 s |
//! | `HF_HUB_USER_AGENT_ORIGIN` | [`HfEnv::user_agent_origin`] | none |
//! | `PIPEFETCH_MIN_RATE` | [`HfEnv::min_rate`] | `8388608/180` (bytes per seconds; `0` disables) |
//! | `PIPEFETCH_MAX_RETRIES` | [`HfEnv::max_attempts`] | 5 attempts |
//! | `CIVITAI_TOKEN` | [`HfEnv::civitai_token`] (sent to civitai.com only) | none |
//! | `https_proxy`, `HTTPS_PROXY`, `http_proxy`, `HTTP_PROXY`, `all_proxy`, `ALL_PROXY`, `no_proxy`, `NO_PROXY` | [`HfEnv::proxy`] | none |
//!
//! Proxy variables are read as Python's `urllib` (hence httpx and `huggingface_hub`) reads them: the
//! lower-case spelling wins over the upper-case one (set but empty, it turns the proxy off), and
//! `HTTP_PROXY` is ignored when `REQUEST_METHOD` is set (a CGI request could set it: "httpoxy").
//! `NO_PROXY` entries follow curl's rules (hyper-util's matcher): a domain matches its subdomains,
//! IPs and CIDR ranges match addresses, `*` matches all; an entry with a port never matches.
//!
//! Booleans are true when the upper-cased value is one of `1`, `ON`, `YES`, `TRUE`. Path values get `~`
//! and `$VAR` / `${VAR}` expansion like Python's `expanduser` + `expandvars`. The token is cleaned like
//! `huggingface_hub` does (`\r` and `\n` removed, surrounding whitespace stripped, empty means none), and
//! it remembers where it came from so that error messages can say which token was rejected.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::proxy::ProxyVars;

/// The default Hub endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// The endpoint used when `HUGGINGFACE_CO_STAGING` is true and `HF_ENDPOINT` is unset.
pub const STAGING_ENDPOINT: &str = "https://hub-ci.huggingface.co";

/// Hub-related settings read from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HfEnv {
    /// The Hub endpoint, without a trailing `/` (`HF_ENDPOINT`).
    pub endpoint: String,
    /// The Hugging Face home folder (`HF_HOME`).
    pub hf_home: PathBuf,
    /// The hub cache folder (`HF_HUB_CACHE`, legacy `HUGGINGFACE_HUB_CACHE`).
    pub hub_cache: PathBuf,
    /// The token found in the environment or the token file, if any.
    pub token: Option<Token>,
    /// Whether every request must fail without touching the network (`HF_HUB_OFFLINE`).
    pub offline: bool,
    /// Whether the stored token must only be sent when asked for explicitly.
    pub disable_implicit_token: bool,
    /// Whether the cache must be written without symlinks (`HF_HUB_DISABLE_SYMLINKS`).
    pub disable_symlinks: bool,
    /// Time allowed for a metadata request (`HF_HUB_ETAG_TIMEOUT`).
    pub etag_timeout: Duration,
    /// Time a download may go without receiving a byte (`HF_HUB_DOWNLOAD_TIMEOUT`).
    pub download_timeout: Duration,
    /// Appended to the user agent as `origin/{value}` (`HF_HUB_USER_AGENT_ORIGIN`).
    pub user_agent_origin: Option<String>,
    /// The rate floor as `(bytes, window)`: a connection delivering less is a stall
    /// (`PIPEFETCH_MIN_RATE=bytes/seconds`, `0` disables).
    pub min_rate: Option<(u64, Duration)>,
    /// How many attempts a request gets (`PIPEFETCH_MAX_RETRIES`).
    pub max_attempts: u32,
    /// The civitai.com API key for URL sources (`CIVITAI_TOKEN`); it is only ever sent to civitai.com.
    pub civitai_token: Option<Token>,
    /// HTTP proxies and the hosts that bypass them.
    pub proxy: ProxyVars,
}

impl HfEnv {
    /// Reads the process environment (and the token file).
    pub fn from_env() -> HfEnv {
        HfEnv::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `var`, which returns a variable's value; tests pass a map here.
    ///
    /// The token file named by `HF_TOKEN_PATH` is still read from disk when no token variable is set.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> HfEnv {
        // Empty values are treated as unset, as Python's `os.environ.get(...) or default` does.
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        let expand = |value: &str| expand_path(value, &get);

        let staging = get("HUGGINGFACE_CO_STAGING").is_some_and(|v| is_truthy(&v));
        let endpoint = get("HF_ENDPOINT")
            .map(|e| e.trim_end_matches('/').to_string())
            .unwrap_or_else(|| {
                if staging {
                    STAGING_ENDPOINT.to_string()
                } else {
                    DEFAULT_ENDPOINT.to_string()
                }
            });

        let hf_home = match get("HF_HOME") {
            Some(home) => expand(&home),
            None => match get("XDG_CACHE_HOME") {
                Some(xdg) => expand(&xdg).join("huggingface"),
                None => expand("~/.cache/huggingface"),
            },
        };
        let hub_cache = get("HF_HUB_CACHE")
            .or_else(|| get("HUGGINGFACE_HUB_CACHE"))
            .map(|p| expand(&p))
            .unwrap_or_else(|| hf_home.join("hub"));

        let token_path = get("HF_TOKEN_PATH")
            .map(|p| expand(&p))
            .unwrap_or_else(|| hf_home.join("token"));
        let token = if let Some(t) = var("HF_TOKEN").and_then(|t| Token::clean(&t)) {
            Some(Token::with_source(t, TokenSource::EnvVar("HF_TOKEN")))
        } else if let Some(t) = var("HUGGING_FACE_HUB_TOKEN").and_then(|t| Token::clean(&t)) {
            Some(Token::with_source(
                t,
                TokenSource::EnvVar("HUGGING_FACE_HUB_TOKEN"),
            ))
        } else {
            // A small file read; a missing or unreadable file simply means "no token".
            std::fs::read_to_string(&token_path)
                .ok()
                .and_then(|t| Token::clean(&t))
                .map(|t| Token::with_source(t, TokenSource::File(token_path.clone())))
        };

        let flag = |name: &str| get(name).is_some_and(|v| is_truthy(&v));
        let seconds = |name: &str, default: u64| {
            get(name)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64)
                .unwrap_or(Duration::from_secs(default))
        };

        let min_rate = match get("PIPEFETCH_MIN_RATE") {
            Some(v) if v.trim() == "0" => None,
            Some(v) => parse_min_rate(&v).or(Some(DEFAULT_MIN_RATE)),
            None => Some(DEFAULT_MIN_RATE),
        };
        let max_attempts = get("PIPEFETCH_MAX_RETRIES")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(5);

        // As urllib: a lower-case variable that is set wins even when empty (then: no proxy).
        let either = |lower: &str, upper: &str| match var(lower) {
            Some(value) => Some(value).filter(|v| !v.is_empty()),
            None => get(upper),
        };
        let cgi = var("REQUEST_METHOD").is_some();
        let proxy = ProxyVars {
            http: if cgi {
                get("http_proxy")
            } else {
                either("http_proxy", "HTTP_PROXY")
            },
            https: either("https_proxy", "HTTPS_PROXY"),
            all: either("all_proxy", "ALL_PROXY"),
            no: either("no_proxy", "NO_PROXY"),
        };

        HfEnv {
            endpoint,
            hf_home,
            hub_cache,
            token,
            offline: flag("HF_HUB_OFFLINE") || flag("TRANSFORMERS_OFFLINE"),
            disable_implicit_token: flag("HF_HUB_DISABLE_IMPLICIT_TOKEN"),
            disable_symlinks: flag("HF_HUB_DISABLE_SYMLINKS"),
            etag_timeout: seconds("HF_HUB_ETAG_TIMEOUT", 10),
            download_timeout: seconds("HF_HUB_DOWNLOAD_TIMEOUT", 10),
            user_agent_origin: get("HF_HUB_USER_AGENT_ORIGIN"),
            min_rate,
            max_attempts,
            civitai_token: var("CIVITAI_TOKEN")
                .and_then(|t| Token::clean(&t))
                .map(|t| Token::with_source(t, TokenSource::EnvVar("CIVITAI_TOKEN"))),
            proxy,
        }
    }
}

/// The rate floor our users enforce by hand today: 8 MiB per 180 s.
pub const DEFAULT_MIN_RATE: (u64, Duration) = (8 * 1024 * 1024, Duration::from_secs(180));

fn parse_min_rate(value: &str) -> Option<(u64, Duration)> {
    let (bytes, secs) = value.trim().split_once('/')?;
    let bytes = bytes.trim().parse::<u64>().ok()?;
    let secs = secs.trim().parse::<u64>().ok().filter(|s| *s > 0)?;
    Some((bytes, Duration::from_secs(secs)))
}

/// Whether a boolean variable's value means "true" (`1`, `ON`, `YES`, `TRUE`, any case).
pub fn is_truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_uppercase().as_str(),
        "1" | "ON" | "YES" | "TRUE"
    )
}

/// Expands a leading `~` and `$VAR` / `${VAR}` references; unknown variables are left as written.
fn expand_path(value: &str, get: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, consumed) = if let Some(body) = after.strip_prefix('{') {
            match body.find('}') {
                Some(end) => (&body[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match (name.is_empty(), get(name)) {
            (false, Some(v)) => out.push_str(&v),
            _ => out.push_str(&rest[i..i + 1 + consumed]),
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);

    if (out == "~" || out.starts_with("~/"))
        && let Some(home) = get("HOME").or_else(|| get("USERPROFILE"))
    {
        return Path::new(&home).join(out[1..].trim_start_matches('/'));
    }
    PathBuf::from(out)
}

/// Where a token came from, so that messages can say which one the Hub rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// An environment variable, by name.
    EnvVar(&'static str),
    /// The token file.
    File(PathBuf),
    /// Given explicitly by the caller (for example `--token`).
    Explicit,
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::EnvVar(name) => write!(f, "${name}"),
            TokenSource::File(path) => write!(f, "the token file {}", path.display()),
            TokenSource::Explicit => f.write_str("the token given explicitly (--token)"),
        }
    }
}

/// A secret bearer token. `Debug` and `Display` redact it (`hf_***xyz`); [`Token::expose`] gives it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    secret: Arc<str>,
    source: TokenSource,
}

impl Token {
    /// A token given explicitly by the caller.
    pub fn new(secret: impl Into<String>) -> Token {
        Token::with_source(secret, TokenSource::Explicit)
    }

    /// A token with a known origin.
    pub fn with_source(secret: impl Into<String>, source: TokenSource) -> Token {
        Token {
            secret: Arc::from(secret.into()),
            source,
        }
    }

    /// Cleans a raw token like `huggingface_hub` does: `\r`/`\n` removed, whitespace stripped,
    /// empty means none.
    pub fn clean(raw: &str) -> Option<String> {
        let cleaned: String = raw.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        let cleaned = cleaned.trim();
        (!cleaned.is_empty()).then(|| cleaned.to_string())
    }

    /// The secret itself, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.secret
    }

    /// Where the token came from.
    pub fn source(&self) -> &TokenSource {
        &self.source
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &*self.secret;
        // Show a recognisable prefix and the last three characters only when the token is long
        // enough that this reveals a negligible part of it.
        if s.len() >= 12 && s.is_ascii() {
            let prefix = match s.find('_') {
                Some(i) if i <= 4 => &s[..=i],
                _ => "",
            };
            write!(f, "{prefix}***{}", &s[s.len() - 3..])
        } else {
            f.write_str("***")
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({self}, from {})", self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> HfEnv {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HfEnv::from_vars(move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_home_and_xdg() {
        let e = env(&[("HOME", "/home/u"), ("HF_TOKEN_PATH", "/nonexistent/token")]);
        assert_eq!(e.endpoint, "https://huggingface.co");
        assert_eq!(e.hf_home, PathBuf::from("/home/u/.cache/huggingface"));
        assert_eq!(e.hub_cache, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(e.token, None);
        assert!(!e.offline);
        assert_eq!(e.etag_timeout, Duration::from_secs(10));
        assert_eq!(e.min_rate, Some(DEFAULT_MIN_RATE));
        assert_eq!(e.max_attempts, 5);

        assert_eq!(
            env(&[("HUGGINGFACE_CO_STAGING", "1")]).endpoint,
            "https://hub-ci.huggingface.co"
        );
        let e = env(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg")]);
        assert_eq!(e.hf_home, PathBuf::from("/xdg/huggingface"));
        assert_eq!(e.hub_cache, PathBuf::from("/xdg/huggingface/hub"));
    }

    #[test]
    fn expansion_and_legacy_names() {
        let e = env(&[
            ("HOME", "/home/u"),
            ("DATA", "/data"),
            ("HF_HOME", "~/hf"),
            ("HUGGINGFACE_HUB_CACHE", "${DATA}/hub-$DATA/$NOPE"),
            ("HF_ENDPOINT", "http://127.0.0.1:9/"),
        ]);
        assert_eq!(e.hf_home, PathBuf::from("/home/u/hf"));
        assert_eq!(e.hub_cache, PathBuf::from("/data/hub-/data/$NOPE"));
        assert_eq!(e.endpoint, "http://127.0.0.1:9");
        // The new name wins over the legacy one.
        let e = env(&[("HF_HUB_CACHE", "/new"), ("HUGGINGFACE_HUB_CACHE", "/old")]);
        assert_eq!(e.hub_cache, PathBuf::from("/new"));
    }

    #[test]
    fn token_precedence_cleaning_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  hf_fromfile_abcdef\r\n").unwrap();
        let p = path.to_str().unwrap();

        let e = env(&[("HF_TOKEN_PATH", p)]);
        let t = e.token.unwrap();
        assert_eq!(t.expose(), "hf_fromfile_abcdef");
        assert_eq!(t.source(), &TokenSource::File(path.clone()));

        let e = env(&[("HF_TOKEN_PATH", p), ("HUGGING_FACE_HUB_TOKEN", "legacy")]);
        assert_eq!(e.token.unwrap().expose(), "legacy");

        let e = env(&[
            ("HF_TOKEN_PATH", p),
            ("HUGGING_FACE_HUB_TOKEN", "legacy"),
            ("HF_TOKEN", " hf_env\n"),
        ]);
        let t = e.token.unwrap();
        assert_eq!(t.expose(), "hf_env");
        assert_eq!(t.source().to_string(), "$HF_TOKEN");

        // A whitespace-only token is no token; the next source is used.
        let e = env(&[("HF_TOKEN_PATH", p), ("HF_TOKEN", " \r\n ")]);
        assert_eq!(e.token.unwrap().expose(), "hf_fromfile_abcdef");
    }

    #[test]
    fn booleans() {
        for v in ["1", "on", "Yes", "TRUE"] {
            assert!(env(&[("HF_HUB_OFFLINE", v)]).offline, "{v}");
            assert!(env(&[("TRANSFORMERS_OFFLINE", v)]).offline, "{v}");
        }
        for v in ["0", "false", "no", "", "2"] {
            assert!(!env(&[("HF_HUB_OFFLINE", v)]).offline, "{v}");
        }
        assert!(env(&[("HF_HUB_DISABLE_SYMLINKS", "1")]).disable_symlinks);
        assert!(env(&[("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")]).disable_implicit_token);
    }

    #[test]
    fn pipefetch_knobs() {
        let e = env(&[
            ("PIPEFETCH_MIN_RATE", "1000/5"),
            ("PIPEFETCH_MAX_RETRIES", "3"),
            ("HF_HUB_DOWNLOAD_TIMEOUT", "2.5"),
        ]);
        assert_eq!(e.min_rate, Some((1000, Duration::from_secs(5))));
        assert_eq!(e.max_attempts, 3);
        assert_eq!(e.download_timeout, Duration::from_millis(2500));
        assert_eq!(env(&[("PIPEFETCH_MIN_RATE", "0")]).min_rate, None);
    }

    #[test]
    fn token_is_redacted() {
        let t = Token::new("hf_abcdefghijklmnopxyz");
        assert_eq!(t.to_string(), "hf_***xyz");
        assert_eq!(
            format!("{t:?}"),
            "Token(hf_***xyz, from the token given explicitly (--token))"
        );
        assert_eq!(Token::new("short").to_string(), "***");
        assert!(!format!("{t:?}").contains("abcdef"));
    }
}
