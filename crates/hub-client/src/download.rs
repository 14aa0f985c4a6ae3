//! Streaming downloads that resume with `Range` after a failure.

use std::future::Future;
use std::ops::{Range, RangeFrom};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use url::Url;

use crate::client::{Auth, ByteStream, Ctx, HubClient, Redirects};
use crate::error::{Error, Result};
use crate::redact::redact_url;

/// Where downloaded bytes go; the fetcher implements it to write a file and hash it.
pub trait BodySink: Send {
    /// Stores the next bytes (at offset [`BodySink::position`]).
    fn write(&mut self, chunk: Bytes) -> impl Future<Output = std::io::Result<()>> + Send;

    /// The server ignored `Range` and is sending from the start: truncate to `from` (normally the
    /// range's start) and re-hash what is kept; the next write lands at `from`.
    fn restart(&mut self, from: u64) -> impl Future<Output = std::io::Result<()>> + Send;

    /// The absolute offset of the next byte expected.
    fn position(&self) -> u64;

    /// Whether the sink wants no more bytes although its range is not over: another connection
    /// took the rest of it (work stealing). The download then ends successfully at once; the
    /// connection, whose body was not read to its end, is closed.
    fn finished(&self) -> bool {
        false
    }
}

/// A growable in-memory sink (the file's bytes from offset 0).
impl BodySink for Vec<u8> {
    async fn write(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.extend_from_slice(&chunk);
        Ok(())
    }

    async fn restart(&mut self, from: u64) -> std::io::Result<()> {
        self.truncate(usize::try_from(from).unwrap_or(usize::MAX));
        Ok(())
    }

    fn position(&self) -> u64 {
        self.len() as u64
    }
}

/// The bytes to download: from `start` to `end` (exclusive), or to the end of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ByteRange {
    /// The first byte.
    pub start: u64,
    /// One past the last byte, or `None` for "to the end".
    pub end: Option<u64>,
}

impl ByteRange {
    /// The whole file.
    pub fn full() -> ByteRange {
        ByteRange::default()
    }
}

impl From<Range<u64>> for ByteRange {
    fn from(r: Range<u64>) -> ByteRange {
        ByteRange {
            start: r.start,
            end: Some(r.end),
        }
    }
}

impl From<RangeFrom<u64>> for ByteRange {
    fn from(r: RangeFrom<u64>) -> ByteRange {
        ByteRange {
            start: r.start,
            end: None,
        }
    }
}

/// Headers of the download's first successful answer that callers need later.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseInfo {
    /// `Content-Disposition` (the real file name for civitai-style URLs).
    pub content_disposition: Option<String>,
    /// `Content-Type` (an HTML page where a model was expected is a red flag).
    pub content_type: Option<String>,
    /// `ETag`, as sent.
    pub etag: Option<String>,
    /// `Content-Length` of that answer.
    pub content_length: Option<u64>,
}

impl ResponseInfo {
    fn from_headers(h: &HeaderMap) -> ResponseInfo {
        let get =
            |name: header::HeaderName| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        ResponseInfo {
            content_disposition: get(header::CONTENT_DISPOSITION),
            content_type: get(header::CONTENT_TYPE),
            etag: get(header::ETAG),
            content_length: get(header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok()),
        }
    }
}

/// How a download went.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DownloadOutcome {
    /// The URL that served the bytes, after redirects (its query may be a credential: `Debug`
    /// shows it through [`redact_url`]).
    pub final_url: Url,
    /// Headers of the first successful answer.
    pub info: ResponseInfo,
    /// The absolute end offset reached (the sink's final position).
    pub end: u64,
    /// The file's total size when the server told it (`Content-Range` total or `Content-Length`).
    pub total: Option<u64>,
    /// How many times the transfer resumed with `Range` after a failure.
    pub resumes: u32,
    /// Whether the server ignored `Range` and the sink was restarted.
    pub restarted: bool,
}

/// `bytes a-b/total` → `(a, b, total)`.
fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?, total))
}

impl HubClient {
    /// Downloads `url` (a resolve URL or a [`crate::FileMetadata::location`]) into `sink`, with
    /// the Hub token sent only to the endpoint's origin.
    pub async fn download<S: BodySink>(
        &self,
        url: &Url,
        range: impl Into<ByteRange>,
        sink: &mut S,
    ) -> Result<DownloadOutcome> {
        let auth = self.inner.auth.clone();
        self.download_url(url, auth.as_ref(), range, sink).await
    }

    /// Downloads any URL into `sink`; `auth`'s token goes only to its own origin, never to where it
    /// redirects. The transfer starts at `sink.position()`, which must lie inside `range` (it is
    /// past `range.start` when the caller resumes a partial file).
    pub async fn download_url<S: BodySink>(
        &self,
        url: &Url,
        auth: Option<&Auth>,
        range: impl Into<ByteRange>,
        sink: &mut S,
    ) -> Result<DownloadOutcome> {
        let range = range.into();
        let pos = sink.position();
        if pos < range.start || range.end.is_some_and(|e| pos > e || range.start > e) {
            return Err(Error::Config {
                what: format!(
                    "download of {}: the sink is at {pos}, outside the requested range {}..{}",
                    redact_url(url),
                    range.start,
                    range.end.map(|e| e.to_string()).unwrap_or_default()
                ),
            });
        }
        let max = self.inner.retry.max_attempts.max(1);
        let mut state = State {
            expected_end: range.end,
            total: None,
            first: None,
            restarted: false,
        };
        let mut attempt = 1;
        let mut resumes = 0;
        loop {
            let from = sink.position();
            let result = if state.expected_end == Some(from) || sink.finished() {
                Ok(())
            } else {
                self.download_attempt(url, auth, range, sink, &mut state)
                    .await
            };
            let error = match result {
                Ok(()) => break,
                Err(e) => e,
            };
            // Progress earns a fresh set of attempts: a flaky link that keeps delivering finishes.
            let progressed = sink.position() > from;
            if progressed {
                attempt = 1;
            }
            if !error.is_retryable() {
                return Err(error);
            }
            if attempt >= max {
                return Err(if attempt > 1 {
                    Error::RetriesExhausted {
                        attempts: attempt,
                        last: Box::new(error),
                    }
                } else {
                    error
                });
            }
            self.before_retry(url, attempt, &error, Some(sink.position()), progressed)
                .await;
            attempt += 1;
            resumes += 1;
        }
        let (final_url, info) = state
            .first
            .unwrap_or_else(|| (url.clone(), ResponseInfo::default()));
        Ok(DownloadOutcome {
            final_url,
            info,
            end: sink.position(),
            total: state.total,
            resumes,
            restarted: state.restarted,
        })
    }

    /// One request of a download, from `sink.position()`.
    async fn download_attempt<S: BodySink>(
        &self,
        url: &Url,
        auth: Option<&Auth>,
        range: ByteRange,
        sink: &mut S,
        state: &mut State,
    ) -> Result<()> {
        let from = sink.position();
        // Only the caller's end goes into `Range`; an end learned from an earlier answer is used
        // to check what arrives, not to shape the request.
        let ranged = from > 0 || range.end.is_some();
        let req_range = ranged.then_some((from, range.end));
        let resp = self
            .send_once(
                Method::GET,
                url,
                auth,
                req_range,
                Redirects::All,
                self.inner.read_idle_timeout,
            )
            .await?;
        let final_url = resp.url.clone();
        let header = |name: header::HeaderName| {
            resp.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_length: Option<u64> =
            header(header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok());
        if let Some(enc) = header(header::CONTENT_ENCODING)
            && !enc.eq_ignore_ascii_case("identity")
        {
            return Err(Error::Protocol {
                url: redact_url(&final_url),
                what: format!("the body is encoded ({enc}) although identity was asked for"),
            });
        }
        // Bytes of this body to drop before the first one the sink wants.
        let mut skip: u64 = 0;
        match resp.status {
            StatusCode::PARTIAL_CONTENT => {
                let cr = header(header::CONTENT_RANGE).unwrap_or_default();
                let Some((a, b, total)) = parse_content_range(&cr) else {
                    return Err(Error::Protocol {
                        url: redact_url(&final_url),
                        what: format!("206 with an invalid Content-Range {cr:?}"),
                    });
                };
                let want_last = state.expected_end.or(total).map(|e| e.saturating_sub(1));
                if a != from || want_last.is_some_and(|w| w != b) || b < a {
                    return Err(Error::Protocol {
                        url: redact_url(&final_url),
                        what: format!(
                            "asked for bytes {from}-{} but the server sent Content-Range {cr:?}",
                            range
                                .end
                                .map(|e| e.saturating_sub(1).to_string())
                                .unwrap_or_default()
                        ),
                    });
                }
                state.expected_end = Some(b + 1);
                if total.is_some() {
                    state.total = total;
                }
            }
            StatusCode::OK => {
                if let Some(len) = content_length {
                    state.total = Some(len);
                }
                if from > 0 {
                    // The server ignored Range and sends the whole file: keep what the caller had
                    // before the range, throw away what this call had written, skip the prefix.
                    sink.restart(range.start).await.map_err(|e| Error::Io {
                        url: redact_url(&final_url),
                        source: e,
                    })?;
                    state.restarted = true;
                    skip = range.start;
                }
                state.expected_end = state.expected_end.or(content_length);
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let cr = header(header::CONTENT_RANGE).unwrap_or_default();
                // `bytes */N` with N equal to where we stand: the caller already has the whole
                // file (a resumed partial that was in fact complete).
                let complete = cr
                    .trim()
                    .strip_prefix("bytes */")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .filter(|n| *n == from && range.end.is_none());
                if let Some(total) = complete {
                    state.total = Some(total);
                    state.expected_end = Some(total);
                    return Ok(());
                }
                return Err(Error::Http {
                    status: 416,
                    url: redact_url(&final_url),
                    request_id: header(header::HeaderName::from_static("x-request-id")),
                    message: Some(format!(
                        "range starting at byte {from} not satisfiable (Content-Range: {cr:?})"
                    )),
                    retry_after: None,
                });
            }
            s if s.is_success() => {
                return Err(Error::Protocol {
                    url: redact_url(&final_url),
                    what: format!("unexpected status {s} for a download"),
                });
            }
            _ => return Err(self.status_error(resp, Ctx::default()).await),
        }
        if state.first.is_none() {
            state.first = Some((final_url.clone(), ResponseInfo::from_headers(&resp.headers)));
        }

        let mut stream: ByteStream = self.stream(resp);
        let io = |e: std::io::Error| Error::Io {
            url: redact_url(&final_url),
            source: e,
        };
        while let Some(mut chunk) = stream.next_chunk().await? {
            if skip > 0 {
                let n = skip.min(chunk.len() as u64);
                skip -= n;
                let _ = chunk.split_to(n as usize);
                if chunk.is_empty() {
                    continue;
                }
            }
            if let Some(end) = state.expected_end {
                let room = end.saturating_sub(sink.position());
                if chunk.len() as u64 > room {
                    // A 200 to a ranged request carries bytes past the range: keep what was
                    // asked for and stop (dropping the stream closes that connection).
                    chunk.truncate(room as usize);
                    if !chunk.is_empty() {
                        sink.write(chunk).await.map_err(io)?;
                    }
                    return Ok(());
                }
            }
            sink.write(chunk).await.map_err(io)?;
            if sink.finished() {
                return Ok(());
            }
        }
        if let Some(end) = state.expected_end
            && sink.position() < end
            && !sink.finished()
        {
            return Err(Error::BodyCut {
                url: redact_url(&final_url),
                received: sink.position(),
                expected: end,
            });
        }
        Ok(())
    }

    /// A single `GET` (redirects followed, statuses checked, connection failures retried) whose
    /// body the caller streams itself. No resume: prefer [`HubClient::download_url`].
    pub async fn get_stream(
        &self,
        url: &Url,
        auth: Option<&Auth>,
        range: Option<ByteRange>,
    ) -> Result<(ByteStream, DownloadHead)> {
        let req_range = range.map(|r| (r.start, r.end));
        self.with_retries(url, || async {
            let resp = self
                .send_once(
                    Method::GET,
                    url,
                    auth,
                    req_range,
                    Redirects::All,
                    self.inner.read_idle_timeout,
                )
                .await?;
            if !resp.status.is_success() {
                return Err(self.status_error(resp, Ctx::default()).await);
            }
            let head = DownloadHead {
                status: resp.status.as_u16(),
                final_url: resp.url.clone(),
                info: ResponseInfo::from_headers(&resp.headers),
                content_range: resp
                    .headers
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_content_range),
            };
            Ok((self.stream(resp), head))
        })
        .await
    }
}

/// The head of a [`HubClient::get_stream`] answer.
#[derive(Clone)]
#[non_exhaustive]
pub struct DownloadHead {
    /// 200 or 206.
    pub status: u16,
    /// The URL that answered, after redirects (`Debug` shows it through [`redact_url`]).
    pub final_url: Url,
    /// Selected headers.
    pub info: ResponseInfo,
    /// `Content-Range` as `(first, last, total)`.
    pub content_range: Option<(u64, u64, Option<u64>)>,
}

impl std::fmt::Debug for DownloadOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadOutcome")
            .field("final_url", &redact_url(&self.final_url))
            .field("info", &self.info)
            .field("end", &self.end)
            .field("total", &self.total)
            .field("resumes", &self.resumes)
            .field("restarted", &self.restarted)
            .finish()
    }
}

impl std::fmt::Debug for DownloadHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadHead")
            .field("status", &self.status)
            .field("final_url", &redact_url(&self.final_url))
            .field("info", &self.info)
            .field("content_range", &self.content_range)
            .finish()
    }
}

struct State {
    expected_end: Option<u64>,
    total: Option<u64>,
    first: Option<(Url, ResponseInfo)>,
    restarted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 10-19/100"),
            Some((10, 19, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, 0, None)));
        assert_eq!(parse_content_range("bytes */100"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
