//! Hashing a file whose ranges arrive out of order: a blocking thread follows the prefix of the
//! file that is on disk and hashes it from the page cache as it grows.
//!
//! The connection that fetches the file from byte 0 hashes its bytes as it writes them (a file of
//! one range is never read back); when it ends, it hands its digest state over and the follower
//! continues from there. Only bytes recorded as written are hashed, so a range that is fetched
//! again can never slip unhashed bytes in, and the digest covers resumed bytes too.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use super::ranges::Ranges;
use crate::verify::Hasher;

/// Bytes read per step.
const HASH_BUFFER: usize = 1 << 20;

/// What the follower is told.
pub(crate) enum HashMsg {
    /// More bytes may be on disk.
    Wake,
    /// The connection that hashed from byte 0 ended: its digest state (if it kept one) covers
    /// bytes `0..upto`.
    Inline(Option<Hasher>, u64),
}

/// Follows `ranges` and hashes `file` in order. `inline` says whether the connection fetching
/// from byte 0 hashes inline (the follower then waits for its state instead of reading those
/// bytes). Returns the hex digest once every byte is hashed, or `None` when the senders went away
/// first (the transfer failed).
pub(crate) fn follow(
    file: &File,
    ranges: &Ranges,
    messages: &Receiver<HashMsg>,
    fresh: Hasher,
    mut inline: bool,
) -> io::Result<Option<String>> {
    let size = ranges.size();
    let mut buf = vec![0u8; HASH_BUFFER];
    let mut fresh = Some(fresh);
    let mut hasher: Option<Hasher> = None;
    let mut pos = 0u64;
    let mut closed = false;
    loop {
        if !inline {
            let frontier = ranges.frontier();
            if pos < frontier {
                let h = match hasher.as_mut() {
                    Some(h) => h,
                    None => hasher.insert(fresh.take().unwrap_or(Hasher::None)),
                };
                let want = ((frontier - pos) as usize).min(buf.len());
                let n = file.read_at(&mut buf[..want], pos)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "temp file shorter than its written ranges",
                    ));
                }
                h.update(&buf[..n]);
                pos += n as u64;
                continue;
            }
            if pos >= size {
                break;
            }
        }
        if closed {
            if inline {
                // The inline state never came: hash those bytes from disk.
                inline = false;
                continue;
            }
            return Ok(None);
        }
        // A timeout as a safety net: a missed wake-up costs a moment, never a hang.
        match messages.recv_timeout(Duration::from_millis(200)) {
            Ok(HashMsg::Wake) | Err(RecvTimeoutError::Timeout) => {}
            Ok(HashMsg::Inline(state, upto)) => {
                inline = false;
                if let Some(state) = state
                    && pos == 0
                    && upto > 0
                {
                    hasher = Some(state);
                    pos = upto;
                }
            }
            Err(RecvTimeoutError::Disconnected) => closed = true,
        }
    }
    let hasher = hasher.unwrap_or_else(|| fresh.unwrap_or(Hasher::None));
    Ok(Some(hasher.finish_hex()))
}
