//! The properties every fuzz target checks, in one place: the `cargo fuzz` targets (nightly,
//! `fuzz/`) and the stable corpus replay (`tests/fuzz_corpus.rs`) both call these functions,
//! so a crash found by the fuzzer replays as an ordinary test.
//!
//! Each check takes arbitrary bytes and panics when a property fails: a decoder fed the
//! same bytes in two chunkings yields the same frames and the same error; nothing buffered
//! passes the configured limit; what an encoder writes decodes back to what it was given;
//! the HTTP server answers every request with exactly one well-formed response, or closes.
//! The first bytes of an input pick the variant (delimiter, limits, the second chunking),
//! so the fuzzer explores those too.
//!
//! Not a stable API: hidden from the documentation, for the fuzz crate and the tests.

mod codecs;
mod http;
mod parsers;

pub use codecs::{command_wire, length_prefixed, line, netstring, resp};
pub use http::{http_chunked, http_head, http_response, http_server, http_url};
pub use parsers::{endpoint, upload};

/// One fuzz target: its name (the `fuzz/fuzz_targets/<name>.rs` file and the
/// `fuzz/corpus/<name>/` directory) and its property check.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, for the corpus replay.
///
/// # Examples
///
/// ```
/// for (name, check) in torsion_protocols::fuzz_props::TARGETS {
///     check(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
///     assert!(!name.is_empty());
/// }
/// ```
pub const TARGETS: &[Target] = &[
    ("line", line),
    ("netstring", netstring),
    ("length_prefixed", length_prefixed),
    ("http_head", http_head),
    ("http_chunked", http_chunked),
    ("http_server", http_server),
    ("http_url", http_url),
    ("http_response", http_response),
    ("upload", upload),
    ("command_wire", command_wire),
    ("endpoint", endpoint),
    ("resp", resp),
    ("tls_server", torsion_reactor::fuzz_tls::tls_server),
    ("tls_client", torsion_reactor::fuzz_tls::tls_client),
];

/// Splits the fuzz input into a selector byte (variants, limits) and the payload.
pub(crate) fn split(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&sel, rest)) => (sel, rest),
        None => (0, data),
    }
}

/// The second chunking of a payload of `len` bytes, derived from `seed`: piece sizes from
/// 1 to 17 bytes, pseudo-random (xorshift), so that frame boundaries fall everywhere.
pub(crate) fn chunk_sizes(seed: u8, len: usize) -> Vec<usize> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(seed).wrapping_mul(0x0100_0000_01b3);
    let mut sizes = Vec::new();
    let mut left = len;
    while left > 0 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = (1 + (state % 17) as usize).min(left);
        sizes.push(n);
        left -= n;
    }
    sizes
}

/// The payload cut at `sizes` (see [`chunk_sizes`]).
pub(crate) fn pieces<'a>(payload: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(sizes.len());
    let mut at = 0;
    for &n in sizes {
        out.push(&payload[at..at + n]);
        at += n;
    }
    out
}

/// The two chunkings every check compares: the payload whole, and cut by `seed`.
pub(crate) fn two_chunkings(seed: u8, payload: &[u8]) -> [Vec<&[u8]>; 2] {
    let whole = if payload.is_empty() { Vec::new() } else { vec![payload] };
    [whole, pieces(payload, &chunk_sizes(seed, payload.len()))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_chunking_covers_the_payload_in_small_pieces() {
        for seed in [0, 1, 200] {
            let sizes = chunk_sizes(seed, 1000);
            assert_eq!(sizes.iter().sum::<usize>(), 1000);
            assert!(sizes.iter().all(|&n| (1..=17).contains(&n)));
        }
        assert!(chunk_sizes(3, 0).is_empty());
    }

    #[test]
    fn every_target_accepts_empty_and_tiny_inputs() {
        for (_, check) in TARGETS {
            for input in [&b""[..], b"\0", b"\xff\xff", b"\r\n\r\n"] {
                check(input);
            }
        }
    }
}
