//! The HTTP/1.1 client: Twisted's `getPage` — [`get_page`] and [`request`] return a
//! `Deferred<Response>` that fires on the reactor's loop when the response is complete.
//!
//! One request per connection (`Connection: close`), plain `http://` only. Host names are
//! resolved on the reactor's thread pool (`Ctx::resolve`), never on the loop; IP literals
//! connect at once, and each resolved address is tried in turn. The response is parsed
//! incrementally by the sans-IO [`ResponseParser`] (status, headers, body by
//! Content-Length, chunked or read-to-close) within the limits of [`ClientOptions`], so
//! a hostile server costs bounded memory and time.
//!
//! Any complete response is a success — a 404 is a [`Response`] with `status == 404`.
//! Failures are [`HttpClientError`]s inside the deferred's `Failure`: a bad URL, name
//! resolution, the connect, a timeout, a malformed or oversized response, a connection
//! that ended early, too many redirects. Redirects (301, 302, 303, 307, 308) are followed
//! only with [`ClientOptions::follow_redirects`]. Cancelling the deferred aborts the
//! request wherever it is.
//!
//! Tested by the unit tests of each file (the parser fed in every chunking) and over
//! loopback sockets by `tests/http_client.rs`; `examples/get_page.rs` fetches URLs from
//! the command line.
//!
//! # Examples
//!
//! Fetch a page and stop the reactor when it has arrived (`no_run`: it needs a server):
//!
//! ```no_run
//! use torsion_protocols::http::client::{get_page, HttpClientError};
//! use torsion_reactor::Reactor;
//!
//! let mut reactor = Reactor::new()?;
//! let mut ctx = reactor.ctx();
//! get_page(&mut ctx, "http://127.0.0.1:8080/index.html").add_both(&mut ctx, |ctx, result| {
//!     match result {
//!         Ok(page) => log::info!("{} {}: {} bytes", page.status, page.reason, page.body.len()),
//!         Err(failure) => match failure.downcast_ref::<HttpClientError>() {
//!             Some(HttpClientError::Timeout { stage, .. }) => log::warn!("{stage} timed out"),
//!             _ => log::warn!("failed: {failure}"),
//!         },
//!     }
//!     ctx.stop();
//!     Ok(())
//! });
//! reactor.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A POST with options, following redirects:
//!
//! ```
//! use std::time::Duration;
//! use torsion_protocols::http::client::{request, ClientOptions};
//! use torsion_reactor::Reactor;
//!
//! let mut reactor = Reactor::new()?;
//! let mut ctx = reactor.ctx();
//! let opts = ClientOptions {
//!     response_timeout: Duration::from_secs(5),
//!     follow_redirects: true,
//!     ..ClientOptions::default()
//! };
//! let headers = [("Content-Type", "application/x-www-form-urlencoded")];
//! let d = request(&mut ctx, "POST", "gopher://example.com/form", &headers, b"a=1".to_vec(), &opts);
//! // A scheme other than http and https is refused at once, with a clear error:
//! d.add_both(&mut ctx, |ctx, result| {
//!     let failure = result.expect_err("gopher is refused");
//!     assert!(failure.to_string().contains("not supported"));
//!     ctx.stop();
//!     Ok(())
//! });
//! reactor.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use torsion_reactor::{Ctx, Deferred, Failure, TlsClientConfig};

mod conn;
mod error;
mod parser;
mod request;
mod response;
mod url;

pub use error::{HttpClientError, Stage};
pub use parser::{ParseError, ResponseLimits, ResponseParser};
pub use response::Response;
pub use url::{Url, UrlError};

use request::Request;

/// How a request is made: timeouts, size limits, redirects, the `User-Agent`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_protocols::http::client::ClientOptions;
/// let opts = ClientOptions { max_body: 1 << 20, ..ClientOptions::default() };
/// assert_eq!(opts.connect_timeout, Duration::from_secs(10));
/// assert!(!opts.follow_redirects);
/// ```
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Bound on establishing the connection, and separately on resolving the host name
    /// (default 10 s).
    pub connect_timeout: Duration,
    /// Bound on the whole response, from sending the request to its last byte, so a
    /// server that trickles cannot hold the request forever (default 30 s).
    pub response_timeout: Duration,
    /// Largest response body; larger fails with [`HttpClientError::BodyTooLarge`]
    /// (default 10 MiB).
    pub max_body: usize,
    /// Longest status line plus headers (default 64 KiB).
    pub max_head: usize,
    /// Follow 301, 302, 303, 307 and 308 redirects (default `false`: the redirect
    /// response is delivered as it is).
    pub follow_redirects: bool,
    /// Most redirects followed for one request (default 5).
    pub max_redirects: usize,
    /// The `User-Agent` sent (empty for none); a caller's own `User-Agent` header wins.
    pub user_agent: String,
    /// Whom `https://` trusts: `None` (the default) uses the machine's root certificates;
    /// `Some(TlsClientConfig::with_ca_file(..)?)` a private CA (tests, internal services).
    /// The server's certificate must name the URL's host either way.
    pub tls: Option<TlsClientConfig>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(30),
            max_body: 10 * 1024 * 1024,
            max_head: 64 * 1024,
            follow_redirects: false,
            max_redirects: 5,
            user_agent: concat!("torsion/", env!("CARGO_PKG_VERSION")).to_string(),
            tls: None,
        }
    }
}

impl ClientOptions {
    fn limits(&self) -> conn::Limits {
        conn::Limits {
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            response: ResponseLimits {
                max_head: self.max_head,
                max_body: self.max_body,
                ..ResponseLimits::default()
            },
        }
    }
}

/// Fetches `url` with GET and the default [`ClientOptions`] (Twisted's `getPage`).
///
/// The deferred fires on the loop with the [`Response`] (whatever its status), or fails
/// with an [`HttpClientError`].
///
/// # Examples
///
/// Several pages at once, collected with `gather` (`no_run`: it needs a server):
///
/// ```no_run
/// use torsion_protocols::http::client::get_page;
/// use torsion_reactor::Reactor;
///
/// let mut reactor = Reactor::new()?;
/// let mut ctx = reactor.ctx();
/// let pages = ["http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b"]
///     .iter()
///     .map(|url| get_page(&mut ctx, url))
///     .collect();
/// ctx.gather(pages).add_both(&mut ctx, |ctx, result| {
///     match result {
///         Ok(pages) => log::info!("{} bytes in all", pages.iter().map(|p| p.body.len()).sum::<usize>()),
///         Err(first_failure) => log::warn!("{first_failure}"),
///     }
///     ctx.stop();
///     Ok(())
/// });
/// reactor.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn get_page(ctx: &mut Ctx<'_>, url: &str) -> Deferred<Response> {
    request(ctx, "GET", url, &[], Vec::new(), &ClientOptions::default())
}

/// Sends `method url` with extra `headers` and `body` per `options`.
///
/// The client sets `Host`, `User-Agent` (both overridable by `headers`),
/// `Connection: close` and, when there is a body (or the method is POST, PUT or PATCH),
/// `Content-Length`; a caller's `Content-Length`, `Transfer-Encoding`, `Connection` or
/// `TE` is refused with [`HttpClientError::BadRequest`], as are header values with CR or
/// LF. Errors found before any IO (URL, request) fail the deferred at once; it still fires
/// in the loop's ready phase, never inside this call.
///
/// # Examples
///
/// A header that would inject another one is refused before anything is sent:
///
/// ```
/// use torsion_protocols::http::client::{request, ClientOptions, HttpClientError};
/// use torsion_reactor::Reactor;
///
/// let mut reactor = Reactor::new()?;
/// let mut ctx = reactor.ctx();
/// let headers = [("X-Name", "a\r\nSet-Cookie: evil")];
/// let opts = ClientOptions::default();
/// request(&mut ctx, "GET", "http://127.0.0.1:9/", &headers, Vec::new(), &opts)
///     .add_both(&mut ctx, |ctx, result| {
///         let failure = result.expect_err("refused");
///         assert!(matches!(failure.downcast_ref(), Some(HttpClientError::BadRequest(_))));
///         ctx.stop();
///         Ok(())
///     });
/// reactor.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn request(
    ctx: &mut Ctx<'_>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    options: &ClientOptions,
) -> Deferred<Response> {
    let parsed = match Url::parse(url) {
        Ok(u) => u,
        Err(error) => {
            return ctx.fail(Failure::new(HttpClientError::BadUrl { url: url.to_string(), error }))
        }
    };
    let request = Request {
        method: method.to_string(),
        url: parsed,
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        body,
    };
    fetch(ctx, request, options.clone(), 0)
}

/// One exchange, then (if enabled) the one its redirect leads to, up to the limit.
fn fetch(
    ctx: &mut Ctx<'_>,
    request: Request,
    opts: ClientOptions,
    hops: usize,
) -> Deferred<Response> {
    let bytes = match request.encode(&opts.user_agent) {
        Ok(b) => b,
        Err(e) => return ctx.fail(Failure::new(e)),
    };
    log::debug!("{} {} (redirect {hops})", request.method, request.url);
    let tls = if request.url.is_https() {
        match opts.tls.clone().map_or_else(system_roots, Ok) {
            Ok(config) => Some(config),
            Err(error) => {
                let to = format!("{}:{}", request.url.host(), request.url.port());
                return ctx.fail(Failure::new(HttpClientError::Tls { to, error }));
            }
        }
    } else {
        None
    };
    let d = conn::start(ctx, &request, bytes, opts.limits(), tls);
    if !opts.follow_redirects {
        return d;
    }
    d.add_callback_deferred(ctx, move |ctx, response| match request.redirected(&response) {
        None => ctx.succeed(response),
        Some(Err(e)) => ctx.fail(Failure::new(e)),
        Some(Ok(_)) if hops >= opts.max_redirects => {
            ctx.fail(Failure::new(HttpClientError::TooManyRedirects { limit: opts.max_redirects }))
        }
        Some(Ok(next)) => {
            log::debug!("{} {} -> {}", response.status, request.url, next.url);
            fetch(ctx, next, opts, hops + 1)
        }
    })
}

/// The machine's root certificates, loaded once per thread (reading the system store
/// costs milliseconds; every `https` request without its own `ClientOptions::tls` shares
/// them).
fn system_roots() -> Result<TlsClientConfig, String> {
    thread_local! {
        static ROOTS: std::cell::OnceCell<Result<TlsClientConfig, String>> =
            const { std::cell::OnceCell::new() };
    }
    ROOTS.with(|r| {
        r.get_or_init(|| TlsClientConfig::system_roots().map_err(|e| e.to_string())).clone()
    })
}
