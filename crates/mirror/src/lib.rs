//! A pipeline mirror on an S3-compatible object store (AWS S3, Cloudflare R2, Garage, MinIO):
//! the Hub once, every machine of a fleet from the mirror.
//!
//! A mirror is a bucket and a prefix, `s3://BUCKET/PREFIX` ([`MirrorLocation`]), holding
//! content-addressed blobs and the locks that name them:
//!
//! ```text
//! PREFIX/blobs/sha256/<hex>                each file once, under the sha256 of its bytes
//! PREFIX/pipelines/<name>.lock             the pipeline's current lock
//! PREFIX/pipelines/<name>/<hex>.lock       every lock pushed, under its own sha256
//! ```
//!
//! The storage layer: upload a file as a blob (multipart, skipped when present, verified against
//! its digest before it lands), check a blob, presign a `GET` for it, and read and write locks.
//! On top of it, [`Mirror::push`] pushes a whole pipeline from its lock (the files come into
//! the local cache through the fetcher's own locked pull; only the blobs the mirror lacks are
//! uploaded; the lock is written last), and [`Mirror::presign_lock`] turns the mirror's lock
//! into one whose files carry presigned URLs, for machines without credentials. Fetching
//! presigned URLs is the transfer engine's job (`pipefetch-fetcher`), with its ranges, budget,
//! resume and verification.
//!
//! ```no_run
//! use std::time::Duration;
//! use pipefetch_mirror::{Mirror, MirrorEnv, Sha256Hex};
//!
//! # async fn run() -> Result<(), pipefetch_mirror::Error> {
//! let env = MirrorEnv::from_env(); // AWS_* and PIPEFETCH_MIRROR
//! let location = "s3://models/fleet".parse()?;
//! let mirror = Mirror::from_env(location, &env)?;
//! mirror.probe().await?; // bucket exists, key accepted
//!
//! let bytes = std::fs::read("unet.safetensors").unwrap();
//! let sha = Sha256Hex::of(&bytes);
//! mirror.upload_blob("unet.safetensors".as_ref(), &sha, bytes.len() as u64, &()).await?;
//! let url = mirror.presign_blob(&sha, Duration::from_secs(3600)).await?;
//! println!("{url}"); // printed without its signature
//! # Ok(()) }
//! ```
//!
//! # Design decisions
//! - **`object_store` (Apache Arrow's) speaks S3**: SigV4 signing, multipart uploads, presigned
//!   URLs and retries from a crate DataFusion and delta-rs depend on. It is built with the `ring`
//!   signer and reqwest with rustls (ring) rather than its `aws` feature, which pulls aws-lc-rs,
//!   a C build. It lives in this crate so that users who do not mirror do not build it.
//! - **Static credentials from the standard variables** ([`mod@env`]), path-style requests to any
//!   `AWS_ENDPOINT_URL`, `http` only to loopback. No instance-metadata probing.
//! - **Secrets never print**: [`Secret`], [`Credentials`], [`Mirror`], [`MirrorEnv`] and
//!   [`PresignedUrl`] redact in `Debug`/`Display`; errors carry the bucket, key, endpoint and a
//!   masked key id. Requests are signed in headers, so object_store's messages (which name the
//!   request URL) hold no signature.
//! - **Nothing unverified under a content address**: the file is hashed as it is read and the
//!   upload is completed only when digest and size match (see [`Mirror::upload_blob`]).
//! - **Memory is bounded per mirror**, not per file: every part in memory holds one of the
//!   mirror's upload slots (default 8 × 8 MiB), however many files upload at once.
#![deny(missing_docs)]

pub mod env;
mod error;
mod location;
mod mirror;
mod presign;
pub mod pull;
pub mod push;
mod upload;

pub use env::{Credentials, MIRROR_VAR, MirrorEnv, Secret};
pub use error::{Error, RequestContext, Result};
pub use location::{MirrorLocation, Sha256Hex, check_pipeline_name};
pub use mirror::{LockKeys, MAX_LOCK_BYTES, MAX_PRESIGN_TTL, Mirror, MirrorBuilder, PresignedUrl};
pub use presign::parse_expiry;
pub use pull::PULL_URL_TTL;
pub use push::{PushOptions, Pushed};
pub use upload::{Upload, UploadProgress};
