//! `Response`: a complete HTTP response as the client delivers it (status, reason,
//! headers, body, trailers), with case-insensitive header look-up.
//!
//! Plain data; built by `parser.rs`. Tested below and by the parser's tests.

/// A complete HTTP response: what a `get_page` / `request` deferred fires with.
///
/// Any status is a success at this level: a 404 is a `Response` with `status == 404`,
/// not a failure (failures are for responses that could not be had at all).
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::client::Response;
///
/// let r = Response {
///     status: 200,
///     reason: "OK".into(),
///     headers: vec![("Content-Type".into(), b"text/plain".to_vec())],
///     body: b"hi".to_vec(),
///     ..Response::default()
/// };
/// assert_eq!(r.header("content-type"), Some("text/plain"));
/// assert!(r.is_success());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// The status code (200, 404, ...).
    pub status: u16,
    /// The reason phrase as the server sent it (may be empty).
    pub reason: String,
    /// The HTTP minor version of the response (`1` for HTTP/1.1, `0` for HTTP/1.0).
    pub version: u8,
    /// The header fields in the order received; names as sent, values as raw bytes
    /// (HTTP allows non-UTF-8 values).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Trailer fields of a chunked body (usually none).
    pub trailers: Vec<(String, Vec<u8>)>,
}

impl Response {
    /// The first header named `name` (case-insensitive), if its value is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first header named `name` (case-insensitive), as raw bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| &v[..])
    }

    /// Every value of the headers named `name` (case-insensitive), in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_protocols::http::client::Response;
    /// let r = Response {
    ///     headers: vec![("Set-Cookie".into(), b"a=1".to_vec()), ("set-cookie".into(), b"b=2".to_vec())],
    ///     ..Response::default()
    /// };
    /// assert_eq!(r.header_all("SET-COOKIE"), [&b"a=1"[..], &b"b=2"[..]]);
    /// ```
    pub fn header_all(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &v[..])
            .collect()
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Whether the status is a redirect the client can follow (301, 302, 303, 307, 308).
    pub fn is_redirect(&self) -> bool {
        matches!(self.status, 301 | 302 | 303 | 307 | 308)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_is_case_insensitive_and_takes_the_first() {
        let r = Response {
            headers: vec![
                ("X-A".into(), b"1".to_vec()),
                ("x-a".into(), b"2".to_vec()),
                ("Bin".into(), vec![0xff]),
            ],
            ..Response::default()
        };
        assert_eq!(r.header("x-A"), Some("1"));
        assert_eq!(r.header("missing"), None);
        assert_eq!(r.header("bin"), None, "non-UTF-8 value");
        assert_eq!(r.header_bytes("bin"), Some(&[0xff][..]));
        assert_eq!(r.header_all("X-a").len(), 2);
    }

    #[test]
    fn status_classes() {
        let r = |status| Response { status, ..Response::default() };
        assert!(r(204).is_success() && !r(301).is_success() && !r(404).is_success());
        assert!([301, 302, 303, 307, 308].iter().all(|&s| r(s).is_redirect()));
        assert!(!r(300).is_redirect() && !r(304).is_redirect() && !r(200).is_redirect());
    }
}
