//! Fuzz properties of the upload header parser and of endpoint strings.

use torsion_reactor::{ClientEndpoint, ServerEndpoint};

use super::{split, two_chunkings};
use crate::upload::{End, Event, Framing, UploadError, UploadParser};

/// What an upload stream parsed to: events with consecutive data joined, then the error.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Announced(u64),
    Header(u64, String),
    Data(Vec<u8>),
    Complete,
    Finished(u64, String, u64),
    Error(UploadError),
}

fn upload_parse(framing: Framing, max_size: u64, pieces: &[&[u8]]) -> Vec<Seen> {
    let mut p = UploadParser::new(framing, max_size).max_header(64);
    let mut seen = Vec::new();
    let mut announced = 0u64;
    let mut data_since = 0u64;
    for piece in pieces {
        let mut rest = *piece;
        loop {
            match p.parse(rest) {
                Ok((n, ev)) => {
                    assert!(n <= rest.len());
                    rest = &rest[n..];
                    match ev {
                        Some(Event::Announced { size }) => {
                            assert!(size <= max_size, "{size} bytes announced, over the limit");
                            seen.push(Seen::Announced(size));
                        }
                        Some(Event::Header(h)) => {
                            assert!(
                                h.size <= max_size,
                                "{} bytes announced, over the limit",
                                h.size
                            );
                            (announced, data_since) = (h.size, 0);
                            seen.push(Seen::Header(h.size, h.name));
                        }
                        Some(Event::Data(d)) => {
                            assert!(!d.is_empty(), "an empty data event");
                            data_since += d.len() as u64;
                            if framing == Framing::Framed {
                                assert!(data_since <= announced, "more data than announced");
                            }
                            match seen.last_mut() {
                                Some(Seen::Data(b)) => b.extend_from_slice(d),
                                _ => seen.push(Seen::Data(d.to_vec())),
                            }
                        }
                        Some(Event::Complete) => {
                            assert_eq!(data_since, announced, "complete before all the data");
                            seen.push(Seen::Complete);
                        }
                        Some(Event::Ended(f)) => {
                            seen.push(Seen::Finished(f.header.size, f.header.name, f.skip))
                        }
                        None => {
                            assert!(rest.is_empty(), "input left with no event");
                            break;
                        }
                    }
                }
                Err(e) => {
                    seen.push(Seen::Error(e));
                    return seen;
                }
            }
        }
        if framing == Framing::Tutorial {
            p.end_of_read();
        }
    }
    match p.end_of_upload(End::Close) {
        Ok(Some(f)) => seen.push(Seen::Finished(f.header.size, f.header.name, f.skip)),
        Ok(None) => {}
        Err(e) => seen.push(Seen::Error(e)),
    }
    seen
}

/// The upload parser: framed uploads give the same events in two chunkings, never more
/// data than announced and never an upload over the limit; the tutorial framing (which
/// reads meaning into read boundaries, by design) is fed both ways without a panic and
/// never announces an upload over the limit.
///
/// # Examples
///
/// ```
/// torsion_protocols::fuzz_props::upload(b"\x01\0\0\0\x10post|5|hello.txt\0\0\0\x05hello");
/// ```
pub fn upload(data: &[u8]) {
    let (sel, payload) = split(data);
    let max_size = u64::from(sel / 2);
    let [whole, cut] = two_chunkings(sel, payload);
    if sel % 2 == 1 {
        let a = upload_parse(Framing::Framed, max_size, &whole);
        let b = upload_parse(Framing::Framed, max_size, &cut);
        assert_eq!(a, b, "the upload events differ between two chunkings");
    } else {
        upload_parse(Framing::Tutorial, max_size, &whole);
        upload_parse(Framing::Tutorial, max_size, &cut);
    }
}

/// Endpoint strings, server and client: parsing never panics, an error says something,
/// and parsing is a function of the string.
///
/// # Examples
///
/// ```
/// torsion_protocols::fuzz_props::endpoint(b"tcp:8080:interface=127.0.0.1");
/// ```
pub fn endpoint(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match text.parse::<ServerEndpoint>() {
        Ok(e) => assert_eq!(text.parse::<ServerEndpoint>().ok(), Some(e)),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    match text.parse::<ClientEndpoint>() {
        Ok(e) => assert_eq!(text.parse::<ClientEndpoint>().ok(), Some(e)),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
