//! Hashing a file whose ranges arrive out of order: the file's loop hashes the prefix of the file
//! that is on disk, from the page cache, as it grows.
//!
//! The connection that fetches the file from byte 0 hashes its bytes as it writes them (a file of
//! one range is never read back); when it ends, it hands its digest state over and the follower
//! continues from there. Only bytes recorded as written are hashed, so a range that is fetched
//! again can never slip unhashed bytes in, and the digest covers resumed bytes too.
//!
//! Reading runs on the blocking pool, one short task at a time and only while there is something
//! to read: a file waiting for its bytes holds no thread (hundreds of small files in flight would
//! otherwise hold hundreds).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::verify::Hasher;

/// Bytes read per step (a buffer lives only while a task runs: many files may be in flight).
const HASH_BUFFER: usize = 256 << 10;
/// Bytes one task hashes before it hands back (so that the loop sees progress and can stop).
const TASK_BYTES: u64 = 64 << 20;

type Step = io::Result<(Hasher, u64)>;

/// The digest of the written prefix of one file.
pub(crate) struct Follower {
    file: Arc<File>,
    size: u64,
    /// The running digest of bytes `0..pos` (taken while a task runs).
    hasher: Option<Hasher>,
    pos: u64,
    /// Waiting for the inline digest of the connection that fetches from byte 0.
    inline_pending: bool,
    running: Option<JoinHandle<Step>>,
}

impl Follower {
    /// A follower starting from `fresh` at byte 0; with `inline_pending`, it waits for the inline
    /// digest instead of reading the first bytes itself.
    pub(crate) fn new(file: Arc<File>, size: u64, fresh: Hasher, inline_pending: bool) -> Follower {
        Follower {
            file,
            size,
            hasher: Some(fresh),
            pos: 0,
            inline_pending,
            running: None,
        }
    }

    /// The connection that hashed from byte 0 ended: its digest state, if it kept one, covers
    /// bytes `0..upto`.
    pub(crate) fn inline_done(&mut self, state: Option<Hasher>, upto: u64) {
        self.inline_pending = false;
        if let Some(state) = state
            && self.pos == 0
            && self.running.is_none()
            && upto > 0
        {
            self.hasher = Some(state);
            self.pos = upto;
        }
    }

    /// Whether a hashing task runs.
    pub(crate) fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Starts hashing bytes `pos..frontier` if there are some and nothing runs.
    pub(crate) fn start(&mut self, frontier: u64) {
        if self.running.is_some() || self.inline_pending || self.pos >= frontier {
            return;
        }
        let Some(mut hasher) = self.hasher.take() else {
            return;
        };
        let file = Arc::clone(&self.file);
        let (from, to) = (self.pos, frontier.min(self.pos + TASK_BYTES));
        let len = usize::try_from((to - from).min(HASH_BUFFER as u64)).unwrap_or(HASH_BUFFER);
        self.running = Some(tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len];
            let mut pos = from;
            while pos < to {
                let want = usize::try_from(to - pos)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                let n = file.read_at(&mut buf[..want], pos)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "temp file shorter than its written ranges",
                    ));
                }
                hasher.update(&buf[..n]);
                pos += n as u64;
            }
            Ok((hasher, pos))
        }));
    }

    /// Waits for the running task (pending forever when none runs: for `select!`).
    pub(crate) async fn step(&mut self) -> io::Result<()> {
        let Some(task) = self.running.as_mut() else {
            return std::future::pending().await;
        };
        let result = task.await;
        self.running = None;
        let (hasher, pos) = result.map_err(io::Error::other)??;
        self.hasher = Some(hasher);
        self.pos = pos;
        Ok(())
    }

    /// Hashes whatever is left (every byte is on disk now) and returns the hex digest.
    pub(crate) async fn finish(mut self) -> io::Result<String> {
        self.inline_pending = false;
        loop {
            if self.running.is_some() {
                self.step().await?;
            } else if self.pos < self.size {
                self.start(self.size);
            } else {
                break;
            }
        }
        let hasher = self.hasher.take().unwrap_or(Hasher::None);
        Ok(hasher.finish_hex())
    }
}
