//! The resource tree, in the style of Twisted web: a [`Resource`] renders requests for
//! the methods it allows and may have children, one per path segment; [`Dir`] holds
//! children; [`Handler`] turns a closure into a resource.

use std::collections::HashMap;
use std::net::SocketAddr;

use torsion_reactor::{Ctx, Deferred, Stats};

use super::head::RequestHead;
use super::response::Response;

/// A request as a resource sees it: the head, the whole body (bounded by the server's
/// limit), where it came from, and how far the tree walk got.
#[derive(Clone, Debug)]
pub struct Request {
    /// Method, target, version, fields.
    pub head: RequestHead,
    /// The body, decoded (Content-Length or chunked).
    pub body: Vec<u8>,
    /// The client's address, when it has one.
    pub peer: Option<SocketAddr>,
    /// The path's segments, percent-decoded.
    pub path: Vec<String>,
    /// The query string (after `?`), not decoded.
    pub query: Option<String>,
    /// How many segments of `path` the walk consumed to reach the rendering resource;
    /// `path[consumed..]` is what is left for it (Twisted's `postpath`).
    pub consumed: usize,
    /// The serving reactor's counters when the request was complete (for status pages).
    pub stats: Stats,
}

impl Request {
    /// The method.
    pub fn method(&self) -> &str {
        self.head.method()
    }

    /// The first field called `name` (case-insensitive), if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The segments not consumed by the walk.
    pub fn postpath(&self) -> &[String] {
        &self.path[self.consumed.min(self.path.len())..]
    }

    /// Splits a request target into decoded segments and the query. Segments are never
    /// empty (`//` collapses); a `None` means the path cannot be decoded into text or
    /// holds a NUL (answer 400).
    pub(crate) fn split_target(target: &str) -> Option<(Vec<String>, Option<String>)> {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (target, None),
        };
        let path = path
            .strip_prefix("http://")
            .map_or(path, |rest| rest.find('/').map_or("/", |i| &rest[i..]));
        let mut segments = Vec::new();
        for raw in path.split('/').filter(|s| !s.is_empty()) {
            let seg = percent_encoding::percent_decode_str(raw).decode_utf8().ok()?;
            if seg.contains('\0') {
                return None;
            }
            segments.push(seg.into_owned());
        }
        Some((segments, query))
    }
}

/// Something that answers requests at a place in the tree (Twisted's `IResource`).
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::{Request, Resource, Response};
///
/// /// Counts its requests.
/// struct Counter(std::cell::Cell<u64>);
/// impl Resource for Counter {
///     fn render(&self, _req: &Request) -> Response {
///         self.0.set(self.0.get() + 1);
///         Response::text(200, format!("{}\n", self.0.get()))
///     }
/// }
/// ```
pub trait Resource: 'static {
    /// The methods `render` answers (`HEAD` is answered wherever `GET` is, without the
    /// body). Others get 405 with an `Allow` field.
    fn allowed_methods(&self) -> &[&str] {
        &["GET"]
    }

    /// Answers a request for this resource.
    fn render(&self, req: &Request) -> Response;

    /// Answers with the reactor's context at hand, to start work that finishes later and
    /// return [`Response::later`] (a Deferred). The server calls this; the default is
    /// `render`.
    fn render_with(&self, req: &Request, ctx: &mut Ctx<'_>) -> Response {
        let _ = ctx;
        self.render(req)
    }

    /// The child for path segment `segment`, if any.
    fn child(&self, segment: &str) -> Option<&dyn Resource> {
        let _ = segment;
        None
    }

    /// A leaf renders every path below it itself (a file tree, say) instead of answering
    /// 404 for segments it has no child for.
    fn is_leaf(&self) -> bool {
        false
    }
}

/// Walks `root` along `req.path` and renders the resource found (404 when none, 405 when
/// the method is not allowed).
pub(crate) fn dispatch(root: &dyn Resource, req: &mut Request, ctx: &mut Ctx<'_>) -> Response {
    let mut node = root;
    let mut consumed = 0;
    while consumed < req.path.len() && !node.is_leaf() {
        match node.child(&req.path[consumed]) {
            Some(child) => {
                node = child;
                consumed += 1;
            }
            None => return Response::error(404, "no such resource"),
        }
    }
    req.consumed = consumed;
    let allowed = node.allowed_methods();
    let method = req.method();
    let ok = allowed.contains(&method) || (method == "HEAD" && allowed.contains(&"GET"));
    if !ok {
        let mut allow: Vec<&str> = allowed.to_vec();
        if allow.contains(&"GET") {
            allow.push("HEAD");
        }
        return Response::error(405, "method not allowed here").header("Allow", allow.join(", "));
    }
    node.render_with(req, ctx)
}

/// A resource with children (Twisted's `Resource` with `putChild`), rendering its own
/// `index` (or 404) for its own path.
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::{Dir, Handler, Response};
/// let mut root = Dir::new();
/// root.put_child("hello", Handler::get(|_req| Response::text(200, "hello\n")));
/// root.set_index(Handler::get(|_req| Response::text(200, "home\n")));
/// ```
#[derive(Default)]
pub struct Dir {
    children: HashMap<String, Box<dyn Resource>>,
    index: Option<Box<dyn Resource>>,
}

impl Dir {
    /// An empty directory.
    pub fn new() -> Dir {
        Dir::default()
    }

    /// Serves `child` at `segment` below this one.
    pub fn put_child(&mut self, segment: &str, child: impl Resource) -> &mut Dir {
        self.children.insert(segment.to_string(), Box::new(child));
        self
    }

    /// What a request for this directory itself renders.
    pub fn set_index(&mut self, index: impl Resource) -> &mut Dir {
        self.index = Some(Box::new(index));
        self
    }
}

impl Resource for Dir {
    fn allowed_methods(&self) -> &[&str] {
        self.index.as_ref().map_or(&["GET"], |i| i.allowed_methods())
    }

    fn render(&self, req: &Request) -> Response {
        match &self.index {
            Some(index) => index.render(req),
            None => Response::error(404, "no such resource"),
        }
    }

    fn render_with(&self, req: &Request, ctx: &mut Ctx<'_>) -> Response {
        match &self.index {
            Some(index) => index.render_with(req, ctx),
            None => Response::error(404, "no such resource"),
        }
    }

    fn child(&self, segment: &str) -> Option<&dyn Resource> {
        self.children.get(segment).map(|c| &**c)
    }
}

/// A closure as a resource, for the methods given.
pub struct Handler<F> {
    methods: Vec<&'static str>,
    f: F,
}

impl<F: Fn(&Request) -> Response + 'static> Handler<F> {
    /// `f` answers `GET` (and so `HEAD`).
    pub fn get(f: F) -> Handler<F> {
        Handler { methods: vec!["GET"], f }
    }

    /// `f` answers `POST`.
    pub fn post(f: F) -> Handler<F> {
        Handler { methods: vec!["POST"], f }
    }

    /// `f` answers `methods`.
    pub fn methods(methods: &[&'static str], f: F) -> Handler<F> {
        Handler { methods: methods.to_vec(), f }
    }
}

impl<F: Fn(&Request) -> Response + 'static> Resource for Handler<F> {
    fn allowed_methods(&self) -> &[&str] {
        &self.methods
    }

    fn render(&self, req: &Request) -> Response {
        (self.f)(req)
    }
}

/// A closure answering later: it gets the request and the reactor's context and returns
/// a Deferred of the response (Twisted's `NOT_DONE_YET`, typed).
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::{Later, Response};
/// // Computed on the reactor's thread pool, answered when done.
/// let slow = Later::get(|_req, ctx| {
///     ctx.defer_to_thread(|| (1..=20u64).product::<u64>())
///         .map(ctx, |_ctx, n| Response::text(200, format!("{n}\n")))
/// });
/// # let _ = slow;
/// ```
pub struct Later<F> {
    methods: Vec<&'static str>,
    f: F,
}

impl<F: Fn(&Request, &mut Ctx<'_>) -> Deferred<Response> + 'static> Later<F> {
    /// `f` answers `GET` (and so `HEAD`).
    pub fn get(f: F) -> Later<F> {
        Later { methods: vec!["GET"], f }
    }

    /// `f` answers `methods`.
    pub fn methods(methods: &[&'static str], f: F) -> Later<F> {
        Later { methods: methods.to_vec(), f }
    }
}

impl<F: Fn(&Request, &mut Ctx<'_>) -> Deferred<Response> + 'static> Resource for Later<F> {
    fn allowed_methods(&self) -> &[&str] {
        &self.methods
    }

    fn render(&self, _req: &Request) -> Response {
        Response::error(500, "this resource needs the reactor's context")
    }

    fn render_with(&self, req: &Request, ctx: &mut Ctx<'_>) -> Response {
        Response::later((self.f)(req, ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, target: &str) -> Request {
        let (path, query) = Request::split_target(target).unwrap();
        Request {
            head: RequestHead::new(method, target, 1, []),
            body: Vec::new(),
            peer: None,
            path,
            query,
            consumed: 0,
            stats: Stats::default(),
        }
    }

    fn tree() -> Dir {
        let mut api = Dir::new();
        api.put_child("echo", Handler::post(|r| Response::json(200, r.body.clone())));
        let mut root = Dir::new();
        root.set_index(Handler::get(|_| Response::text(200, "home")));
        root.put_child("api", api);
        root.put_child("rest", Leaf);
        root
    }

    struct Leaf;
    impl Resource for Leaf {
        fn render(&self, req: &Request) -> Response {
            Response::text(200, req.postpath().join("|"))
        }
        fn is_leaf(&self) -> bool {
            true
        }
    }

    #[test]
    fn targets_split_into_decoded_segments_and_a_query() {
        let (p, q) = Request::split_target("/a//b%20c/?x=1%202").unwrap();
        assert_eq!(p, ["a", "b c"]);
        assert_eq!(q.as_deref(), Some("x=1%202"));
        assert_eq!(Request::split_target("http://host:80/z").unwrap().0, ["z"]);
        assert!(Request::split_target("/a%00b").is_none());
        assert!(Request::split_target("/%ff").is_none());
        assert_eq!(Request::split_target("/%2e%2e/x").unwrap().0, ["..", "x"]);
    }

    #[test]
    fn the_walk_finds_children_leaves_and_refuses_what_is_not_there() {
        let root = tree();
        let mut ctx = torsion_reactor::testing::StringTransport::new();
        assert_eq!(dispatch(&root, &mut request("GET", "/"), &mut ctx.ctx()).status(), 200);
        assert_eq!(dispatch(&root, &mut request("HEAD", "/"), &mut ctx.ctx()).status(), 200);
        assert_eq!(dispatch(&root, &mut request("GET", "/nope"), &mut ctx.ctx()).status(), 404);
        assert_eq!(dispatch(&root, &mut request("GET", "/api"), &mut ctx.ctx()).status(), 404);
        let mut leaf = request("GET", "/rest/x/y");
        let r = dispatch(&root, &mut leaf, &mut ctx.ctx());
        assert_eq!((r.status(), leaf.postpath()), (200, &["x".to_string(), "y".to_string()][..]));
        let r = dispatch(&root, &mut request("GET", "/api/echo"), &mut ctx.ctx());
        assert_eq!(r.status(), 405);
        assert_eq!(r.header_value("allow"), Some("POST"));
        let r = dispatch(&root, &mut request("DELETE", "/"), &mut ctx.ctx());
        assert_eq!(r.header_value("allow"), Some("GET, HEAD"));
        assert_eq!(
            dispatch(&root, &mut request("POST", "/api/echo"), &mut ctx.ctx()).status(),
            200
        );
    }
}
