//! Integration tests of the fetcher against a real hub-server on 127.0.0.1:0.

mod adaptive;
mod download;
mod engine;
mod lock;
mod pipeline;
mod schema;
mod select;
mod snapshot;
mod sources;
mod support;
mod url_source;
mod world;
