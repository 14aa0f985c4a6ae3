//! The one place where the mirror's environment variables are read.
//!
//! | variable | field | default |
//! |---|---|---|
//! | `PIPEFETCH_MIRROR` | [`MirrorEnv::mirror`]: `s3://BUCKET/PREFIX` for every pull of a fleet | none (no mirror) |
//! | `AWS_ACCESS_KEY_ID` | [`Credentials::access_key_id`] | none: required |
//! | `AWS_SECRET_ACCESS_KEY` | [`Credentials::secret_access_key`] | none: required |
//! | `AWS_SESSION_TOKEN` | [`Credentials::session_token`] (temporary credentials) | none |
//! | `AWS_REGION`, else `AWS_DEFAULT_REGION` | [`MirrorEnv::region`] | `us-east-1` |
//! | `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL` | [`MirrorEnv::endpoint`]: a self-hosted or other provider's store (R2, Garage, MinIO), addressed path-style | AWS S3, virtual-hosted style |
//!
//! Empty values count as unset. Only static keys are read: the instance-metadata and web-identity
//! credential chains of the AWS SDKs are not consulted (they probe link-local addresses and would
//! stall off AWS). Plain `http` endpoints are accepted only on loopback addresses.

use std::fmt;

use crate::error::{Error, Result};
use crate::location::MirrorLocation;

/// The variable naming a fleet's mirror.
pub const MIRROR_VAR: &str = "PIPEFETCH_MIRROR";

/// The region used when neither `AWS_REGION` nor `AWS_DEFAULT_REGION` is set.
pub const DEFAULT_REGION: &str = "us-east-1";

/// A secret string (a secret access key, a session token). `Debug` and `Display` print
/// `<redacted>`; [`Secret::expose`] is the only way to the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the signer only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// S3 credentials: an access key (id and secret) and, for temporary credentials, a session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id (`AKIA…`, `GK…`): an identifier, but shown only by its last 4
    /// characters, as the AWS CLI does.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
}

impl Credentials {
    /// An access key without a session token.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: Secret::new(secret_access_key),
            session_token: None,
        }
    }

    /// The key id with all but its last 4 characters masked.
    pub fn masked_key_id(&self) -> String {
        mask(&self.access_key_id)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.masked_key_id())
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .finish()
    }
}

/// Mirror settings read from the environment. `Debug` masks the key id and hides the secrets.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MirrorEnv {
    /// `PIPEFETCH_MIRROR`, as written (parse it with [`MirrorEnv::mirror_location`]).
    pub mirror: Option<String>,
    /// The region requests are signed for.
    pub region: String,
    /// The endpoint of a store other than AWS S3.
    pub endpoint: Option<String>,
    /// The access key id, when `AWS_ACCESS_KEY_ID` is set.
    pub access_key_id: Option<String>,
    /// The secret access key, when `AWS_SECRET_ACCESS_KEY` is set.
    pub secret_access_key: Option<Secret>,
    /// The session token, when `AWS_SESSION_TOKEN` is set.
    pub session_token: Option<Secret>,
}

impl fmt::Debug for MirrorEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MirrorEnv")
            .field("mirror", &self.mirror)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id.as_deref().map(mask))
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .finish()
    }
}

/// `****` and the last 4 characters.
fn mask(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("****{tail}")
}

impl MirrorEnv {
    /// Reads the process environment.
    pub fn from_env() -> MirrorEnv {
        MirrorEnv::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `var`, which returns a variable's value; tests pass a map here.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> MirrorEnv {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        MirrorEnv {
            mirror: get(MIRROR_VAR),
            region: get("AWS_REGION")
                .or_else(|| get("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| DEFAULT_REGION.to_string()),
            endpoint: get("AWS_ENDPOINT_URL_S3").or_else(|| get("AWS_ENDPOINT_URL")),
            access_key_id: get("AWS_ACCESS_KEY_ID"),
            secret_access_key: get("AWS_SECRET_ACCESS_KEY").map(Secret::new),
            session_token: get("AWS_SESSION_TOKEN").map(Secret::new),
        }
    }

    /// The fleet's mirror from `PIPEFETCH_MIRROR`, if set.
    pub fn mirror_location(&self) -> Result<Option<MirrorLocation>> {
        self.mirror
            .as_deref()
            .map(|m| {
                m.parse().map_err(|e| match e {
                    Error::InvalidLocation { input, reason } => Error::InvalidLocation {
                        input,
                        reason: format!("{reason} (from {MIRROR_VAR})"),
                    },
                    other => other,
                })
            })
            .transpose()
    }

    /// The credentials, or an error naming the variable that is missing.
    pub fn credentials(&self) -> Result<Credentials> {
        let Some(access_key_id) = self.access_key_id.clone() else {
            return Err(Error::MissingCredentials {
                missing: "AWS_ACCESS_KEY_ID",
            });
        };
        let Some(secret_access_key) = self.secret_access_key.clone() else {
            return Err(Error::MissingCredentials {
                missing: "AWS_SECRET_ACCESS_KEY",
            });
        };
        Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: self.session_token.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> MirrorEnv {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        MirrorEnv::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_and_precedence() {
        let e = env(&[]);
        assert_eq!(e.region, "us-east-1");
        assert_eq!(e.endpoint, None);
        assert_eq!(e.mirror_location().unwrap(), None);
        assert!(matches!(
            e.credentials(),
            Err(Error::MissingCredentials {
                missing: "AWS_ACCESS_KEY_ID"
            })
        ));

        let e = env(&[
            ("AWS_DEFAULT_REGION", "eu-west-3"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2"),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE1234"),
            ("AWS_SECRET_ACCESS_KEY", " "),
            (MIRROR_VAR, "s3://fleet/models"),
        ]);
        assert_eq!(e.region, "eu-west-3");
        assert_eq!(e.endpoint.as_deref(), Some("http://127.0.0.1:2"));
        assert_eq!(
            e.mirror_location().unwrap().unwrap().to_string(),
            "s3://fleet/models"
        );
        // An empty (here: blank) secret is unset.
        assert!(matches!(
            e.credentials(),
            Err(Error::MissingCredentials {
                missing: "AWS_SECRET_ACCESS_KEY"
            })
        ));
        let e = env(&[("AWS_REGION", "auto"), ("AWS_DEFAULT_REGION", "x")]);
        assert_eq!(e.region, "auto");

        let bad = env(&[(MIRROR_VAR, "bucket/x")])
            .mirror_location()
            .unwrap_err();
        assert!(bad.to_string().contains(MIRROR_VAR), "{bad}");
    }

    #[test]
    fn secrets_never_print() {
        let e = env(&[
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE1234"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-very-secret"),
            ("AWS_SESSION_TOKEN", "FwoGZXIvYXdz-session-secret"),
        ]);
        let creds = e.credentials().unwrap();
        for shown in [
            format!("{e:?}"),
            format!("{creds:?}"),
            format!("{} {:?}", creds.secret_access_key, creds.session_token),
        ] {
            assert!(!shown.contains("very-secret"), "{shown}");
            assert!(!shown.contains("session-secret"), "{shown}");
        }
        assert_eq!(creds.masked_key_id(), "****1234");
        assert!(!format!("{creds:?}").contains("AKIAEXAMPLE"));
        assert!(!format!("{e:?}").contains("AKIAEXAMPLE"));
        assert_eq!(
            creds.secret_access_key.expose(),
            "wJalrXUtnFEMI-very-secret"
        );
    }
}
