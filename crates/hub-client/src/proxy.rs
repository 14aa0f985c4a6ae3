//! HTTP proxies, read as curl, httpx (hence `huggingface_hub`) and hyper-util read them.
//!
//! `https://` destinations go through a `CONNECT` tunnel, so TLS runs end to end and the proxy never
//! sees a header, the token included. Plain `http://` destinations are sent to the proxy in
//! absolute form, with `Proxy-Authorization` when the proxy URL carries credentials. `NO_PROXY`
//! follows curl's rules (hyper-util's matcher): domains match their subdomains, IPs and CIDR
//! ranges match addresses, `*` matches everything. Only `http://` proxies are supported: a
//! `socks5://` or `https://` proxy URL is refused when the client is built, never ignored.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Uri};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::{BoxError, Error};

/// Proxy settings: which proxy each destination goes through, if any.
#[derive(Clone, Default)]
pub(crate) struct Proxies {
    matcher: Option<Arc<Matcher>>,
}

/// The raw values of the proxy variables, as found in the environment. Its `Debug` shows the
/// proxies without their user and password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxyVars {
    /// For `http://` destinations (`HTTP_PROXY`, `http_proxy`).
    pub http: Option<String>,
    /// For `https://` destinations (`HTTPS_PROXY`, `https_proxy`).
    pub https: Option<String>,
    /// For both, when the specific one is unset (`ALL_PROXY`, `all_proxy`).
    pub all: Option<String>,
    /// Hosts that bypass the proxy (`NO_PROXY`, `no_proxy`).
    pub no: Option<String>,
}

impl std::fmt::Debug for ProxyVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| {
            v.as_deref().map(|v| {
                v.parse::<Uri>()
                    .map(|u| shown(&u))
                    .unwrap_or_else(|_| "…".into())
            })
        };
        f.debug_struct("ProxyVars")
            .field("http", &redacted(&self.http))
            .field("https", &redacted(&self.https))
            .field("all", &redacted(&self.all))
            .field("no", &self.no)
            .finish()
    }
}

impl ProxyVars {
    /// Whether any proxy is set.
    pub fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none() && self.all.is_none()
    }
}

impl Proxies {
    /// No proxy at all.
    pub fn none() -> Proxies {
        Proxies::default()
    }

    /// Proxies from the variables' values; a value that is not an `http://` proxy URL is an error
    /// naming the variable.
    pub fn from_vars(vars: &ProxyVars) -> Result<Proxies, Error> {
        if vars.is_empty() {
            return Ok(Proxies::none());
        }
        let mut builder = Matcher::builder();
        // ALL_PROXY only matters where a specific one is unset; a `socks5://` ALL_PROXY beside
        // http ones (as proxy apps set them up) must not stop us.
        let all = if vars.http.is_some() && vars.https.is_some() {
            &None
        } else {
            &vars.all
        };
        for (name, value) in [
            ("HTTP_PROXY", &vars.http),
            ("HTTPS_PROXY", &vars.https),
            ("ALL_PROXY", all),
        ] {
            let Some(value) = value else { continue };
            check_proxy_url(name, value)?;
            builder = match name {
                "HTTP_PROXY" => builder.http(value.as_str()),
                "HTTPS_PROXY" => builder.https(value.as_str()),
                _ => builder.all(value.as_str()),
            };
        }
        if let Some(no) = &vars.no {
            builder = builder.no(no.as_str());
        }
        Ok(Proxies {
            matcher: Some(Arc::new(builder.build())),
        })
    }

    /// The proxy `uri` goes through (without credentials, for messages), if any.
    pub fn proxy_for(&self, uri: &Uri) -> Option<String> {
        let intercept = self.matcher.as_ref()?.intercept(uri)?;
        Some(shown(intercept.uri()))
    }

    /// The `Proxy-Authorization` a plain-`http` request to `uri` carries (tunnelled `https`
    /// requests authenticate in their `CONNECT` instead).
    pub(crate) fn authorization_for(&self, uri: &Uri) -> Option<HeaderValue> {
        if uri.scheme() != Some(&http::uri::Scheme::HTTP) {
            return None;
        }
        let intercept = self.matcher.as_ref()?.intercept(uri)?;
        intercept.basic_auth().cloned()
    }

    /// The connector; `connect_timeout` also bounds a proxy's answer to `CONNECT`.
    pub(crate) fn connector(
        &self,
        http: HttpConnector,
        connect_timeout: std::time::Duration,
    ) -> ProxyConnector {
        ProxyConnector {
            http,
            matcher: self.matcher.clone(),
            connect_timeout,
        }
    }
}

impl std::fmt::Debug for Proxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The matcher's own Debug could show credentials; say only whether there is one.
        f.debug_struct("Proxies")
            .field("configured", &self.matcher.is_some())
            .finish()
    }
}

fn check_proxy_url(name: &str, value: &str) -> Result<(), Error> {
    let refuse = |why: &str| Error::Config {
        what: format!(
            "{name}={}: {why}",
            // Never echo a password.
            value
                .parse::<Uri>()
                .map(|u| shown(&u))
                .unwrap_or_else(|_| "…".into())
        ),
    };
    let uri: Uri = value
        .parse()
        .map_err(|_| refuse("not a URL (expected http://host:port)"))?;
    match uri.scheme_str() {
        None | Some("http") => {}
        Some(other) => {
            return Err(refuse(&format!(
                "{other}:// proxies are not supported; use an http:// proxy (https destinations are tunnelled with CONNECT)"
            )));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(refuse("the proxy URL has no host"));
    }
    if uri
        .authority()
        .is_some_and(|a| a.as_str().matches('@').count() > 1)
    {
        // hyper-util splits at the first `@`, Python at the last: say it rather than guess.
        return Err(refuse(
            "more than one `@`: write an `@` inside the user or password as %40",
        ));
    }
    Ok(())
}

/// `scheme://host:port`, without user or password.
fn shown(uri: &Uri) -> String {
    let host = uri.host().unwrap_or("?");
    let scheme = uri.scheme_str().unwrap_or("http");
    match uri.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    }
}

/// The proxy error in `e`'s chain of causes, if the failure happened on the way through a proxy.
pub(crate) fn find_proxy_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a ProxyError> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<ProxyError>() {
            return Some(found);
        }
        current = err.source();
    }
    None
}

/// A connection failure on the way through a proxy, naming the proxy.
#[derive(Debug, thiserror::Error)]
#[error("proxy {proxy}: {what}")]
pub(crate) struct ProxyError {
    pub(crate) proxy: String,
    what: String,
    /// The proxy answered 407 to `CONNECT`: trying again with the same credentials is pointless.
    pub(crate) auth_required: bool,
    #[source]
    source: Option<BoxError>,
}

/// Opens connections directly or through the proxy the matcher picks for the destination.
#[derive(Clone)]
pub(crate) struct ProxyConnector {
    http: HttpConnector,
    matcher: Option<Arc<Matcher>>,
    connect_timeout: std::time::Duration,
}

type Connecting = Pin<Box<dyn Future<Output = Result<ProxyStream, BoxError>> + Send>>;

impl tower_service::Service<Uri> for ProxyConnector {
    type Response = ProxyStream;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // HttpConnector is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let intercept = self.matcher.as_ref().and_then(|m| m.intercept(&dst));
        let mut http = self.http.clone();
        let connect_timeout = self.connect_timeout;
        Box::pin(async move {
            let Some(proxy) = intercept else {
                let io = tower_service::Service::call(&mut http, dst).await?;
                return Ok(ProxyStream { io, proxied: false });
            };
            let fail = |what: String, auth_required: bool, source: Option<BoxError>| -> BoxError {
                Box::new(ProxyError {
                    proxy: shown(proxy.uri()),
                    what,
                    auth_required,
                    source,
                })
            };
            if dst.scheme() == Some(&http::uri::Scheme::HTTPS) {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), http);
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                let tunnelled = tokio::time::timeout(
                    connect_timeout,
                    tower_service::Service::call(&mut tunnel, dst.clone()),
                )
                .await
                .map_err(|_| {
                    fail(
                        format!("no answer to CONNECT within {connect_timeout:?}"),
                        false,
                        None,
                    )
                })?;
                let io = tunnelled.map_err(|e| {
                    // hyper-util does not export its tunnel error type; its messages are stable.
                    let text = e.to_string();
                    let auth_required = text.contains("authorization required");
                    let what = if auth_required {
                        "the proxy asks for credentials (407); put them in the proxy URL, \
                             http://user:password@host:port"
                            .to_string()
                    } else if text.contains("failed to create underlying connection") {
                        "could not connect".to_string()
                    } else if text.ends_with("unsuccessful") {
                        format!(
                            "the proxy refused to open a tunnel to {}",
                            dst.authority().map(|a| a.as_str()).unwrap_or("?")
                        )
                    } else {
                        text
                    };
                    fail(what, auth_required, Some(Box::new(e)))
                })?;
                // Requests inside the tunnel are ordinary origin-form requests.
                Ok(ProxyStream { io, proxied: false })
            } else {
                let io = tower_service::Service::call(&mut http, proxy.uri().clone())
                    .await
                    .map_err(|e| fail("could not connect".into(), false, Some(Box::new(e))))?;
                Ok(ProxyStream { io, proxied: true })
            }
        })
    }
}

/// A TCP connection, direct, tunnelled, or to a proxy that takes absolute-form requests.
pub(crate) struct ProxyStream {
    io: TokioIo<TcpStream>,
    /// Requests on this connection go to an HTTP proxy, so hyper writes them in absolute form.
    proxied: bool,
}

impl Connection for ProxyStream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl Read for ProxyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for ProxyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(https: &str) -> ProxyVars {
        ProxyVars {
            https: Some(https.into()),
            ..ProxyVars::default()
        }
    }

    #[test]
    fn only_http_proxies_are_accepted_and_passwords_never_shown() {
        let err = Proxies::from_vars(&vars("socks5://user:secret@p:1080"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("HTTPS_PROXY=socks5://p:1080"), "{err}");
        assert!(err.contains("not supported"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        let err = Proxies::from_vars(&vars("https://p:3128")).unwrap_err();
        assert!(
            err.to_string()
                .contains("https:// proxies are not supported")
        );
        assert!(
            Proxies::from_vars(&vars("p:3128")).is_ok(),
            "no scheme means http"
        );
        let err = Proxies::from_vars(&vars("http://user:p@ss@p:3128"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("write an `@` inside the user or password as %40"),
            "{err}"
        );
        assert!(Proxies::from_vars(&vars("http://user:p%40ss@p:3128")).is_ok());
    }

    #[test]
    fn credentials_go_only_with_requests_the_proxy_carries() {
        let proxies = Proxies::from_vars(&ProxyVars {
            http: Some("http://u:pw@hp:1".into()),
            no: Some("direct.example".into()),
            ..ProxyVars::default()
        })
        .unwrap();
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert!(
            proxies
                .authorization_for(&uri("http://hub.example/x"))
                .is_some()
        );
        assert!(
            proxies
                .authorization_for(&uri("http://direct.example/x"))
                .is_none()
        );
        // No https proxy is set: https goes direct (ALL_PROXY is unset).
        assert_eq!(proxies.proxy_for(&uri("https://hub.example/x")), None);
    }

    #[test]
    fn destinations_pick_their_proxy_and_no_proxy_bypasses() {
        let proxies = Proxies::from_vars(&ProxyVars {
            http: Some("http://hp:1".into()),
            https: Some("http://u:pw@sp:2".into()),
            all: None,
            no: Some("internal.example, 10.0.0.0/8".into()),
        })
        .unwrap();
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert_eq!(
            proxies
                .proxy_for(&uri("http://huggingface.co/x"))
                .as_deref(),
            Some("http://hp:1")
        );
        assert_eq!(
            proxies
                .proxy_for(&uri("https://huggingface.co/x"))
                .as_deref(),
            Some("http://sp:2")
        );
        assert_eq!(
            proxies.proxy_for(&uri("https://a.internal.example/x")),
            None
        );
        assert_eq!(proxies.proxy_for(&uri("http://10.1.2.3/x")), None);
        // Credentials go with plain-http requests only; https ones authenticate in CONNECT.
        assert!(
            proxies
                .authorization_for(&uri("https://huggingface.co/"))
                .is_none()
        );
        assert!(
            proxies
                .authorization_for(&uri("http://huggingface.co/"))
                .is_none(),
            "hp has no credentials"
        );
        assert_eq!(format!("{proxies:?}"), "Proxies { configured: true }");
    }
}
