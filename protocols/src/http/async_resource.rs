//! `Async`: an HTTP resource answered by an `async` block — run as a reactor task, its
//! response sent when the future completes, in pipeline order (as `Response::later`).
//!
//! Tested by `tests/async_http.rs`.

use std::future::Future;

use torsion_reactor::Ctx;

use super::{Request, Resource, Response};

/// A resource whose closure returns a future of the response (an `async` handler).
///
/// The closure sees the request and returns a `'static` future (clone what it needs from
/// the request); the future runs as a task on the loop thread ([`Ctx::spawn`]) and may
/// `.await` Deferreds, sleeps and connections. Requests pipelined behind it wait, in
/// order. A panic in the future becomes a 500, like a failed Deferred.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_protocols::http::{Async, Dir, Response};
/// use torsion_reactor::aio;
///
/// let mut root = Dir::new();
/// root.put_child("slow", Async::get(|req| {
///     let path = req.path.join("/");
///     async move {
///         aio::sleep(Duration::from_millis(5)).await;
///         Response::text(200, format!("you asked for /{path}\n"))
///     }
/// }));
/// ```
pub struct Async<F> {
    methods: Vec<&'static str>,
    f: F,
}

impl<F, Fut> Async<F>
where
    F: Fn(&Request) -> Fut + 'static,
    Fut: Future<Output = Response> + 'static,
{
    /// `f` answers `GET` (and so `HEAD`).
    pub fn get(f: F) -> Async<F> {
        Async { methods: vec!["GET"], f }
    }

    /// `f` answers `methods`.
    pub fn methods(methods: &[&'static str], f: F) -> Async<F> {
        Async { methods: methods.to_vec(), f }
    }
}

impl<F, Fut> Resource for Async<F>
where
    F: Fn(&Request) -> Fut + 'static,
    Fut: Future<Output = Response> + 'static,
{
    fn allowed_methods(&self) -> &[&str] {
        &self.methods
    }

    fn render(&self, _req: &Request) -> Response {
        Response::error(500, "this resource needs the reactor's context")
    }

    fn render_with(&self, req: &Request, ctx: &mut Ctx<'_>) -> Response {
        let fut = (self.f)(req);
        Response::later(ctx.spawn(fut))
    }
}
