//! `Request`: what the client sends — validated and encoded to bytes (sans-IO) — and the
//! request a redirect leads to.
//!
//! Tested below.

use super::error::HttpClientError;
use super::response::Response;
use super::url::Url;

/// Headers the client writes itself: a caller's copy would frame the message wrongly.
const RESERVED: [&str; 4] = ["content-length", "transfer-encoding", "connection", "te"];

/// One HTTP request: method, URL, extra headers and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) url: Url,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// RFC 9110 `tchar`: what a method or header name may contain.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Request {
    /// Whether the response to it has no body whatever its headers say.
    pub(crate) fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// The request's bytes: request line, `Host`, `User-Agent` (unless the caller set
    /// them), `Connection: close` (one request per connection), `Content-Length` when
    /// there is a body or the method usually has one, the caller's headers, the body.
    ///
    /// # Errors
    ///
    /// [`HttpClientError::BadRequest`] for a method or header name that is not a token, a
    /// header value with CR, LF or NUL (header injection), or a reserved header.
    pub(crate) fn encode(&self, user_agent: &str) -> Result<Vec<u8>, HttpClientError> {
        let bad = |why: String| Err(HttpClientError::BadRequest(why));
        if !is_token(&self.method) {
            return bad(format!("method {:?} is not a token", self.method));
        }
        for (name, value) in &self.headers {
            if !is_token(name) {
                return bad(format!("header name {name:?} is not a token"));
            }
            if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                return bad(format!("header {name} has CR, LF or NUL in its value"));
            }
            if RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
                return bad(format!("header {name} is set by the client"));
            }
        }
        if user_agent.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return bad("user agent has CR, LF or NUL".into());
        }
        let has = |n: &str| self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        let mut out = Vec::with_capacity(256 + self.body.len());
        out.extend_from_slice(
            format!("{} {} HTTP/1.1\r\n", self.method, self.url.target()).as_bytes(),
        );
        if !has("host") {
            out.extend_from_slice(format!("Host: {}\r\n", self.url.host_header()).as_bytes());
        }
        if !has("user-agent") && !user_agent.is_empty() {
            out.extend_from_slice(format!("User-Agent: {user_agent}\r\n").as_bytes());
        }
        out.extend_from_slice(b"Connection: close\r\n");
        let body_method = matches!(self.method.as_str(), "POST" | "PUT" | "PATCH");
        if !self.body.is_empty() || body_method {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        Ok(out)
    }

    /// The request a redirect response leads to: `None` if `response` is not a redirect
    /// or has no `Location` (it is then the final response).
    ///
    /// 303 turns any method but HEAD into a body-less GET, and so do 301 and 302 for POST
    /// (what browsers do); 307 and 308 repeat the request as it was. Credentials
    /// (`Authorization`, `Cookie`) are not sent to another host.
    pub(crate) fn redirected(
        &self,
        response: &Response,
    ) -> Option<Result<Request, HttpClientError>> {
        if !response.is_redirect() {
            return None;
        }
        let location = response.header("location")?;
        let url = match self.url.join(location) {
            Ok(url) => url,
            Err(error) => {
                return Some(Err(HttpClientError::BadUrl { url: location.to_string(), error }))
            }
        };
        let to_get = match response.status {
            303 => !self.is_head(),
            301 | 302 => self.method == "POST",
            _ => false,
        };
        let mut next = self.clone();
        if to_get {
            next.method = "GET".into();
            next.body.clear();
        }
        // Credentials go neither to another origin nor over a downgrade to plain http
        // (curl and browsers do the same).
        let other_origin = (url.host(), url.port()) != (self.url.host(), self.url.port());
        if other_origin || (self.url.is_https() && !url.is_https()) {
            next.headers.retain(|(n, _)| {
                !n.eq_ignore_ascii_case("authorization") && !n.eq_ignore_ascii_case("cookie")
            });
        }
        next.headers.retain(|(n, _)| !n.eq_ignore_ascii_case("host"));
        next.url = url;
        Some(Ok(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
        Request {
            method: method.into(),
            url: Url::parse(url).unwrap(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn a_get_has_host_agent_and_close_and_no_length() {
        let bytes =
            req("GET", "http://h:8080/p?q=1", &[("Accept", "*/*")], b"").encode("t/1").unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "GET /p?q=1 HTTP/1.1\r\nHost: h:8080\r\nUser-Agent: t/1\r\nConnection: close\r\nAccept: */*\r\n\r\n"
        );
    }

    #[test]
    fn a_post_carries_its_length_and_body_and_callers_host_wins() {
        let r = req("POST", "http://h/", &[("Host", "virtual"), ("User-Agent", "me")], b"a=1");
        assert_eq!(
            String::from_utf8(r.encode("t/1").unwrap()).unwrap(),
            "POST / HTTP/1.1\r\nConnection: close\r\nContent-Length: 3\r\nHost: virtual\r\nUser-Agent: me\r\n\r\na=1"
        );
        let empty = req("PUT", "http://h/", &[], b"").encode("").unwrap();
        assert!(String::from_utf8(empty).unwrap().contains("Content-Length: 0\r\n"));
    }

    #[test]
    fn unsendable_requests_are_refused() {
        let cases: [(&str, &[(&str, &str)]); 7] = [
            ("GE T", &[]),
            ("", &[]),
            ("GET", &[("X-Bad\r\nInjected", "1")]),
            ("GET", &[("X", "a\r\nInjected: 1")]),
            ("GET", &[("X", "a\0")]),
            ("GET", &[("Content-Length", "5")]),
            ("GET", &[("transfer-encoding", "chunked")]),
        ];
        for (method, headers) in cases {
            let e = req(method, "http://h/", headers, b"").encode("ua").unwrap_err();
            assert!(matches!(e, HttpClientError::BadRequest(_)), "{method:?} {headers:?}: {e}");
        }
        assert!(req("GET", "http://h/", &[], b"").encode("ua\r\nX: y").is_err());
    }

    fn redirect(status: u16, location: Option<&str>) -> Response {
        Response {
            status,
            headers: location
                .map(|l| ("Location".to_string(), l.as_bytes().to_vec()))
                .into_iter()
                .collect(),
            ..Response::default()
        }
    }

    #[test]
    fn redirects_rewrite_method_and_url_as_browsers_do() {
        let post = req("POST", "http://h/a/b", &[("Cookie", "c"), ("X", "1")], b"data");
        let next = post.redirected(&redirect(303, Some("c"))).unwrap().unwrap();
        assert_eq!((next.method.as_str(), next.url.to_string()), ("GET", "http://h/a/c".into()));
        assert!(next.body.is_empty());
        assert_eq!(next.headers.len(), 2, "same host keeps the cookie");
        let next = post.redirected(&redirect(302, Some("/x"))).unwrap().unwrap();
        assert_eq!(next.method, "GET");
        for status in [307, 308] {
            let next = post.redirected(&redirect(status, Some("/y"))).unwrap().unwrap();
            assert_eq!((next.method.as_str(), &next.body[..]), ("POST", &b"data"[..]));
        }
        let next = post.redirected(&redirect(301, Some("http://other/"))).unwrap().unwrap();
        assert_eq!(
            next.headers,
            [("X".to_string(), "1".to_string())],
            "no cookie for another host"
        );
        let head = req("HEAD", "http://h/", &[], b"");
        assert_eq!(head.redirected(&redirect(303, Some("/z"))).unwrap().unwrap().method, "HEAD");
    }

    #[test]
    fn non_redirects_and_bad_locations() {
        let get = req("GET", "http://h/", &[], b"");
        assert!(get.redirected(&redirect(200, Some("/x"))).is_none());
        assert!(get.redirected(&redirect(304, Some("/x"))).is_none());
        assert!(get.redirected(&redirect(302, None)).is_none(), "no Location: final");
        let e = get.redirected(&redirect(302, Some("ftp://h/"))).unwrap().unwrap_err();
        assert!(e.to_string().contains("is not supported"), "{e}");
    }

    #[test]
    fn a_redirect_to_https_is_followed_and_a_downgrade_drops_credentials() {
        let secret = [("Authorization", "Bearer x"), ("Cookie", "c=1")];
        let get = req("GET", "http://h/", &secret, b"");
        let up = get.redirected(&redirect(301, Some("https://h:80/"))).unwrap().unwrap();
        assert_eq!(up.url.to_string(), "https://h:80/");
        assert_eq!(up.headers.len(), 2, "same host and port: credentials kept");
        let secure = req("GET", "https://h/", &secret, b"");
        let down = secure.redirected(&redirect(302, Some("http://h:443/"))).unwrap().unwrap();
        assert!(down.headers.is_empty(), "no credentials in the clear: {:?}", down.headers);
    }
}
