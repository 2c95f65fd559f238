//! Fuzz properties of the HTTP parsers (request head, chunked bodies, the client's URL and
//! response parsers) and of the whole server connection, driven through the testing kit.

use torsion_reactor::testing::StringTransport;
use torsion_reactor::{ManualClock, Protocol, TransportOptions};

use super::{split, two_chunkings};
use crate::http::client::{
    ParseError, Response as ClientResponse, ResponseLimits, ResponseParser, Url,
};
use crate::http::{
    body_framing, encode_chunk, encode_last_chunk, parse_head, Body, BodyStream, ChunkedDecoder,
    ChunkedError, Dir, Handler, HttpServer, Limits, Response, ServerConfig,
};

/// Small limits, so that the fuzzer reaches every one of them.
fn small_limits(sel: u8) -> Limits {
    Limits {
        max_request_line: 64 + usize::from(sel % 8) * 32,
        max_header_bytes: 128 + usize::from(sel / 8 % 8) * 64,
        max_headers: 1 + usize::from(sel / 64) * 4,
        max_body: 64,
        max_chunk_size_line: 32,
        max_chunk_extensions: 64,
    }
}

/// The request head parser: a head found in the whole input is found, the same, in every
/// prefix long enough and in none shorter; a prefix never fails where the whole succeeds;
/// more is never waited for past the limits; a parsed head, written out again, parses to
/// itself; its body framing is decided without a panic.
///
/// # Examples
///
/// ```
/// torsion_protocols::fuzz_props::http_head(b"\0GET / HTTP/1.1\r\nHost: a\r\n\r\n");
/// ```
pub fn http_head(data: &[u8]) {
    let (sel, payload) = split(data);
    let limits = small_limits(sel);
    let whole = parse_head(payload, &limits);
    let [_, cut] = two_chunkings(sel, payload);
    let mut end = 0;
    for piece in cut {
        end += piece.len();
        let part = parse_head(&payload[..end], &limits);
        match (&whole, &part) {
            (Ok(Some((_, n))), Ok(None)) => assert!(end < *n, "{end} bytes hold the head"),
            (Ok(Some((_, n))), Ok(Some(_))) => {
                assert!(end >= *n);
                assert_eq!(&part, &whole, "a longer input parses to another head");
            }
            (Ok(Some(_)), Err(e)) => {
                panic!("a prefix of {end} bytes is refused ({e}), the whole is not")
            }
            (Ok(None), Ok(Some(_))) => {
                panic!("a prefix of {end} bytes holds a head, the whole not")
            }
            (Ok(None), Err(e)) => {
                panic!("a prefix of {end} bytes is refused ({e}), the whole waits")
            }
            _ => {}
        }
    }
    match whole {
        Ok(None) => {
            let bound = 64 + limits.max_request_line + 1 + limits.max_header_bytes;
            assert!(payload.len() <= bound, "waiting for more with {} bytes", payload.len());
        }
        Ok(Some((head, _))) => {
            let _ = body_framing(&head);
            let mut raw =
                format!("{} {} HTTP/1.{}\r\n", head.method(), head.target(), head.version())
                    .into_bytes();
            for (name, value) in head.headers() {
                raw.extend_from_slice(name.as_bytes());
                raw.extend_from_slice(b": ");
                raw.extend_from_slice(value);
                raw.extend_from_slice(b"\r\n");
            }
            raw.extend_from_slice(b"\r\n");
            let limits =
                Limits { max_request_line: usize::MAX, max_header_bytes: usize::MAX, ..limits };
            let again = parse_head(&raw, &limits).expect("a parsed head written out parses");
            assert_eq!(again.map(|(h, _)| h), Some(head), "the head written out parses to another");
        }
        Err(e) => assert!((400..600).contains(&e.status), "refused with {}", e.status),
    }
}

/// What a chunked body decoded to: the body, whether it ended, bytes used (0 after an
/// error), the error.
type ChunkedOutcome = (Vec<u8>, bool, usize, Option<ChunkedError>);

fn chunked_decode(
    make: &impl Fn() -> ChunkedDecoder,
    pieces: &[&[u8]],
    max_body: usize,
) -> ChunkedOutcome {
    let mut d = make();
    let mut out = Vec::new();
    let mut used = 0;
    for piece in pieces {
        match d.decode(piece, &mut out) {
            Ok(n) => {
                assert!(n <= piece.len());
                assert!(n == piece.len() || d.is_done(), "input left over before the end");
                used += n;
            }
            // How much of the failing piece was used is not said: not compared.
            Err(e) => return (out, d.is_done(), 0, Some(e)),
        }
        assert!(out.len() <= max_body, "a body of {} bytes passed the limit", out.len());
        assert!(d.buffered() <= 64 + 1, "{} bytes of a line buffered", d.buffered());
        if d.is_done() {
            break;
        }
    }
    (out, d.is_done(), used, None)
}

/// The chunked body decoder: the same body, end and error in two chunkings, no line
/// buffered past its limit, the body within its limit, and any data encoded as chunks
/// decoding back.
///
/// # Examples
///
/// ```
/// torsion_protocols::fuzz_props::http_chunked(b"\x015\r\nhello\r\n0\r\n\r\n");
/// ```
pub fn http_chunked(data: &[u8]) {
    let (sel, payload) = split(data);
    let max_body = 1 + usize::from(sel % 128);
    let make = || ChunkedDecoder::new(max_body as u64, 64).with_extension_limits(32, 48);
    let [whole, cut] = two_chunkings(sel, payload);
    let a = chunked_decode(&make, &whole, max_body);
    let b = chunked_decode(&make, &cut, max_body);
    assert_eq!(a, b, "the body differs between two chunkings");
    // Round trip: the payload, cut into chunks by the second chunking.
    let mut wire = Vec::new();
    let [_, cut] = two_chunkings(sel, payload);
    for piece in &cut {
        encode_chunk(piece, &mut wire);
    }
    encode_last_chunk(&mut wire);
    wire.extend_from_slice(b"NEXT");
    let limit = payload.len().max(1);
    let make = || ChunkedDecoder::new(limit as u64, 64);
    let (body, done, used, err) = chunked_decode(&make, &[&wire], limit);
    assert_eq!((body.as_slice(), done, used, err), (payload, true, wire.len() - 4, None));
}

/// The HTTP client's URL parser: a parsed URL prints as a URL that parses to itself, and
/// so does any reference joined to it.
///
/// # Examples
///
/// ```
/// torsion_protocols::fuzz_props::http_url(b"http://example.com:8080/a?b\0../c");
/// ```
pub fn http_url(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (base, reference) = text.split_once('\0').unwrap_or((&text, ""));
    let Ok(url) = Url::parse(base) else { return };
    let printed = url.to_string();
    assert_eq!(Url::parse(&printed).as_ref(), Ok(&url), "{printed} parses to another URL");
    assert!(url.target().starts_with('/') && url.port() > 0);
    if let Ok(joined) = url.join(reference) {
        let printed = joined.to_string();
        assert_eq!(Url::parse(&printed), Ok(joined), "{printed} parses to another URL");
    }
}

/// How a response parse ended.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Fed(ClientResponse),
    AtEof(ClientResponse),
    Error(ParseError),
}

fn response_parse(head: bool, limits: ResponseLimits, pieces: &[&[u8]]) -> Parsed {
    let mut p = if head { ResponseParser::for_head(limits) } else { ResponseParser::new(limits) };
    for piece in pieces {
        match p.feed(piece) {
            Ok(Some(r)) => {
                assert_eq!(p.feed(b"more"), Ok(None), "more after a complete response");
                return Parsed::Fed(r);
            }
            Ok(None) => {}
            Err(e) => {
                assert_eq!(p.feed(b"more"), Err(e.clone()), "errors are sticky");
                return Parsed::Error(e);
            }
        }
    }
    match p.eof() {
        Ok(Some(r)) => Parsed::AtEof(r),
        Ok(None) => panic!("the end of a stream with no complete response gave nothing"),
        Err(e) => Parsed::Error(e),
    }
}

/// The HTTP client's response parser with small limits: the same outcome in two
/// chunkings, and a response within its limits.
///
/// # Examples
///
/// ```
/// torsion_protocols::fuzz_props::http_response(b"\0HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
/// ```
pub fn http_response(data: &[u8]) {
    let (sel, payload) = split(data);
    let limits = ResponseLimits {
        max_head: 64 + usize::from(sel % 16) * 16,
        max_headers: 1 + usize::from(sel / 16 % 8),
        max_body: 64,
        max_chunk_line: 32,
    };
    let head = sel >= 128;
    let [whole, cut] = two_chunkings(sel, payload);
    let a = response_parse(head, limits, &whole);
    let b = response_parse(head, limits, &cut);
    assert_eq!(a, b, "the response differs between two chunkings");
    if let Parsed::Fed(r) | Parsed::AtEof(r) = &a {
        assert!(r.body.len() <= limits.max_body, "a body of {} bytes", r.body.len());
        assert!(r.headers.len() <= limits.max_headers && r.trailers.len() <= limits.max_headers);
        assert!(!head || r.body.is_empty(), "a body in the response to HEAD");
        assert!((100..1000).contains(&r.status), "status {}", r.status);
    }
}

/// Three pieces of "piece\n": a streamed body.
struct Pieces(usize);

impl BodyStream for Pieces {
    fn next_piece(&mut self, _max: usize) -> std::io::Result<Option<Vec<u8>>> {
        if self.0 == 0 {
            return Ok(None);
        }
        self.0 -= 1;
        Ok(Some(b"piece\n".to_vec()))
    }
}

fn fuzz_server(config: ServerConfig) -> HttpServer {
    let mut root = Dir::new();
    root.set_index(Handler::get(|_| Response::text(200, "hello")));
    root.put_child("echo", Handler::post(|r| Response::new(200).body(Body::Bytes(r.body.clone()))));
    root.put_child(
        "stream",
        Handler::get(|_| Response::new(200).body(Body::Stream(Box::new(Pieces(3))))),
    );
    HttpServer::new(root, config)
}

/// What one connection answered: each final response's status and body, in order, and
/// whether the server closed.
#[derive(Debug, PartialEq, Eq)]
struct Answered {
    responses: Vec<(u16, Vec<u8>)>,
    closed: bool,
}

/// Splits a server's output into responses, each checked by the client's parser (as the
/// answer to a request other than HEAD if that explains the bytes, else to a HEAD).
fn responses(mut out: &[u8], closed: bool) -> Vec<(u16, Vec<u8>)> {
    let mut found = Vec::new();
    'next: while !out.is_empty() {
        assert!(
            out.starts_with(b"HTTP/1.1 "),
            "not a response: {:?}",
            String::from_utf8_lossy(out)
        );
        let mut last_err = None;
        for head in [false, true] {
            let limits = ResponseLimits {
                max_head: usize::MAX,
                max_body: usize::MAX,
                ..ResponseLimits::default()
            };
            let mut p =
                if head { ResponseParser::for_head(limits) } else { ResponseParser::new(limits) };
            // Byte by byte, to learn where the response ends.
            for (i, b) in out.iter().enumerate() {
                match p.feed(std::slice::from_ref(b)) {
                    Ok(Some(r)) => {
                        let rest = &out[i + 1..];
                        if rest.is_empty() || rest.starts_with(b"HTTP/1.1 ") {
                            found.push((r.status, r.body));
                            out = rest;
                            continue 'next;
                        }
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        last_err = Some(e);
                        break;
                    }
                }
            }
            if closed && !head {
                if let Ok(Some(r)) = p.eof() {
                    found.push((r.status, r.body));
                    return found;
                }
            }
        }
        panic!("a malformed response ({last_err:?}): {:?}", String::from_utf8_lossy(out));
    }
    found
}

fn serve(server: &HttpServer, pieces: &[&[u8]], bound: usize) -> Answered {
    let clock = ManualClock::new();
    let mut tr = StringTransport::with_options(
        TransportOptions::default(),
        torsion_reactor::Clock::now(&clock),
    );
    let mut c = server.connection(None);
    c.connection_made(&mut tr.transport());
    let mut out = Vec::new();
    for piece in pieces {
        // As a real transport does, deliver nothing while reading is paused (a response
        // streams): let it write until it resumes reading. It must, or it is stuck.
        for _ in 0..64 {
            if !tr.is_reading_paused() || tr.is_closing() {
                break;
            }
            c.resume_producing(&mut tr.transport());
            out.extend(tr.take());
        }
        assert!(!tr.is_reading_paused() || tr.is_closing(), "reading paused for good");
        if tr.is_closing() {
            break;
        }
        c.data_received(&mut tr.transport(), piece);
        out.extend(tr.take());
        // One read may land on top of what the limits allow buffered, never more.
        let bound = bound + piece.len();
        assert!(c.buffered() <= bound, "{} bytes buffered, over {bound}", c.buffered());
    }
    // Let streamed responses finish.
    for _ in 0..64 {
        c.resume_producing(&mut tr.transport());
        let more = tr.take();
        if more.is_empty() {
            break;
        }
        out.extend(more);
    }
    let closed = tr.is_closing();
    let responses = responses(&out, closed);
    let answered = server.stats_handle().borrow().requests;
    assert_eq!(
        responses.len() as u64,
        answered,
        "{answered} requests answered with {} responses",
        responses.len()
    );
    Answered { responses, closed }
}

/// The whole HTTP server connection on the in-memory transport, small limits: every
/// request answered with exactly one well-formed response (counted against the server's
/// own count), nothing buffered past the limits, and the same answers in two chunkings —
/// except that a refusal ending the connection may name a different limit when the input
/// breaks two at once (the first noticed wins).
///
/// # Examples
///
/// ```
/// torsion_protocols::fuzz_props::http_server(b"\0GET / HTTP/1.1\r\nHost: a\r\n\r\n");
/// ```
pub fn http_server(data: &[u8]) {
    let (sel, payload) = split(data);
    let config =
        ServerConfig { limits: small_limits(sel), max_pipelined: 256, ..ServerConfig::default() };
    let limits = &config.limits;
    let bound =
        (64 + limits.max_request_line + 1 + limits.max_header_bytes).max(config.max_pipelined) + 64;
    let [whole, cut] = two_chunkings(sel, payload);
    let a = serve(&fuzz_server(config.clone()), &whole, bound);
    let b = serve(&fuzz_server(config), &cut, bound);
    let refused_last = |x: &Answered| x.closed && x.responses.last().is_some_and(|r| r.0 >= 400);
    if refused_last(&a) && refused_last(&b) && a.responses.len() == b.responses.len() {
        let n = a.responses.len() - 1;
        assert_eq!(a.responses[..n], b.responses[..n], "the answers differ between two chunkings");
    } else {
        assert_eq!(a, b, "the answers differ between two chunkings");
    }
}
