//! Integration tests: the client against real servers on 127.0.0.1 (scripted raw servers for exact
//! framing, and `hub-server` for the Hub's real answers).

mod client;
mod download;
mod errors;
mod hub;
mod metadata;
mod proxy;
mod raw_server;
mod redaction;
mod retries;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipefetch_hub_client::{HubClient, HubClientBuilder, RetryEvent, RetryPolicy};

/// Fails a test that runs longer than 20 s instead of hanging the suite.
pub async fn guard<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test timed out")
}

/// A builder for `endpoint` with fast timeouts and retries that compute waits but do not sleep.
pub fn builder(endpoint: &str) -> HubClientBuilder {
    HubClient::builder()
        .endpoint(endpoint)
        .retry(RetryPolicy::no_delay())
        .connect_timeout(Duration::from_secs(2))
        .read_idle_timeout(Duration::from_secs(2))
        .metadata_timeout(Duration::from_secs(2))
        .api_timeout(Duration::from_secs(2))
}

/// Records every retry event.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<RetryEvent>>>);

impl Recorder {
    pub fn observer(&self) -> pipefetch_hub_client::RetryObserver {
        let events = self.0.clone();
        Arc::new(move |e: &RetryEvent| events.lock().unwrap().push(e.clone()))
    }

    pub fn events(&self) -> Vec<RetryEvent> {
        self.0.lock().unwrap().clone()
    }
}

/// Deterministic test bytes.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}
