//! Fuzz properties of the framing codecs (line, netstring, length-prefixed, the remote
//! command's wire format) and of the RESP request decoder.

use super::{split, two_chunkings};
use crate::codec::{
    Buffer, CodecError, Decoder, Encoder, LengthPrefixed, LineCodec, NetstringCodec,
};
use crate::command::{Reply, ReplyCodec, Request};
use crate::resp::{RespDecoder, RespLimits};

/// What decoding a stream gave: the frames, then the error that stopped it (if any).
type Outcome<T> = (Vec<T>, Option<CodecError>);

/// Feeds `pieces` to the decoder `make` builds, draining frames after each; asserts that
/// what stays buffered never passes `bound`. `LineTooLong` is recovered from as
/// `LineReceiver` does (skip the line) and recorded as a `None` frame.
fn decode<D: Decoder>(
    mut make: impl FnMut() -> D,
    pieces: &[&[u8]],
    bound: usize,
    recover: impl Fn(&mut D, &mut Buffer, &CodecError) -> bool,
) -> Outcome<Option<D::Item>> {
    let mut d = make();
    let mut buf = Buffer::new();
    let mut frames = Vec::new();
    for piece in pieces {
        buf.extend(piece);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(f)) => frames.push(Some(f)),
                Ok(None) => break,
                Err(e) if recover(&mut d, &mut buf, &e) => frames.push(None),
                Err(e) => return (frames, Some(e)),
            }
        }
        assert!(buf.len() <= bound, "{} bytes buffered, over the bound of {bound}", buf.len());
    }
    (frames, None)
}

/// Decodes `payload` whole and in the chunking `seed` gives; asserts both give the same.
fn same_both_ways<D>(
    mut make: impl FnMut() -> D,
    seed: u8,
    payload: &[u8],
    bound: usize,
    recover: impl Fn(&mut D, &mut Buffer, &CodecError) -> bool,
) -> Outcome<Option<D::Item>>
where
    D: Decoder,
    D::Item: PartialEq + std::fmt::Debug,
{
    let [whole, cut] = two_chunkings(seed, payload);
    let a = decode(&mut make, &whole, bound, &recover);
    let b = decode(&mut make, &cut, bound, &recover);
    assert_eq!(a, b, "the frames differ between two chunkings");
    a
}

fn no_recovery<D>(_: &mut D, _: &mut Buffer, _: &CodecError) -> bool {
    false
}

/// Encodes every item the encoder accepts, decodes the result and asserts it gives back
/// exactly the accepted items.
fn round_trip<C>(mut make: impl FnMut() -> C, items: &[Vec<u8>])
where
    C: Decoder<Item = Vec<u8>> + Encoder<[u8]>,
{
    let mut enc = make();
    let mut wire = Vec::new();
    let mut accepted = Vec::new();
    for item in items {
        let before = wire.len();
        match enc.encode(item, &mut wire) {
            Ok(()) => accepted.push(Some(item.clone())),
            Err(_) => assert_eq!(wire.len(), before, "a refused item left bytes behind"),
        }
    }
    let (frames, err) = decode(make, &[&wire], usize::MAX, no_recovery);
    assert_eq!(err, None, "the encoder's output does not decode");
    assert_eq!(frames, accepted, "the encoder's output decodes to something else");
}

/// Items for the encoders: the payload cut at each `0xff` byte.
fn items(payload: &[u8]) -> Vec<Vec<u8>> {
    payload.split(|&b| b == 0xff).map(<[u8]>::to_vec).collect()
}

/// The line codec: four delimiters, a limit from 1 to 64 bytes, `LineTooLong` recovered
/// from by skipping the line (as `LineReceiver` does).
///
/// # Examples
///
/// ```
/// torsion_protocols::fuzz_props::line(b"\x05one\r\ntwo\nthree");
/// ```
pub fn line(data: &[u8]) {
    let (sel, payload) = split(data);
    let max = 1 + usize::from(sel >> 2) % 64;
    let variant = move || match sel % 4 {
        0 => LineCodec::new(),
        1 => LineCodec::lf(),
        2 => LineCodec::lenient(),
        _ => LineCodec::with_delimiter(b"abab"),
    };
    let make = move || variant().max_length(max);
    // Without a delimiter yet, a line may hold `max` bytes and a delimiter's start.
    let bound = max + 4;
    let skip = |d: &mut LineCodec, buf: &mut Buffer, e: &CodecError| {
        let too_long = matches!(e, CodecError::LineTooLong { .. });
        if too_long {
            d.skip_line(buf);
        }
        too_long
    };
    let (frames, _) = same_both_ways(make, sel, payload, bound, skip);
    for f in frames.iter().flatten() {
        assert!(f.len() <= max, "a line of {} bytes passed the limit of {max}", f.len());
    }
    // The limit is on what is received (as Twisted's `MAX_LENGTH`): the encoder sends longer
    // lines, so the round trip decodes without it.
    let unlimited = move || variant().max_length(usize::MAX);
    round_trip(unlimited, &items(payload));
    round_trip(unlimited, &frames.into_iter().flatten().collect::<Vec<_>>());
}

/// The netstring codec, with a limit from 0 to 127 bytes.
///
/// # Examples
///
/// ```
/// torsion_protocols::fuzz_props::netstring(b"\x405:hello,0:,");
/// ```
pub fn netstring(data: &[u8]) {
    let (sel, payload) = split(data);
    let max = usize::from(sel % 128);
    let make = move || NetstringCodec::new().max_length(max);
    // Length digits, the colon, the payload so far (the comma completes it).
    let bound = max.to_string().len() + 1 + max;
    let (frames, _) = same_both_ways(make, sel, payload, bound, no_recovery);
    round_trip(make, &items(payload));
    round_trip(make, &frames.into_iter().flatten().collect::<Vec<_>>());
}

/// The length-prefixed codec: 1, 2 or 4 byte prefixes, a limit from 0 to 84 bytes.
///
/// # Examples
///
/// ```
/// torsion_protocols::fuzz_props::length_prefixed(b"\x01\0\x03abc");
/// ```
pub fn length_prefixed(data: &[u8]) {
    let (sel, payload) = split(data);
    let max = usize::from(sel / 3);
    let (make, width): (fn() -> LengthPrefixed, usize) = match sel % 3 {
        0 => (LengthPrefixed::int8, 1),
        1 => (LengthPrefixed::int16, 2),
        _ => (LengthPrefixed::int32, 4),
    };
    let make = move || make().max_frame(max);
    let (frames, _) = same_both_ways(make, sel, payload, width + max, no_recovery);
    round_trip(make, &items(payload));
    round_trip(make, &frames.into_iter().flatten().collect::<Vec<_>>());
}

/// The remote command's wire format: request payloads parse, re-encode and parse back to
/// the same argv; the reply stream decodes the same in two chunkings, and every decoded
/// reply encodes and decodes back to itself.
///
/// # Examples
///
/// ```
/// torsion_protocols::fuzz_props::command_wire(b"\0echo\0hi\0");
/// ```
pub fn command_wire(data: &[u8]) {
    let (sel, payload) = split(data);
    let max_args = 1 + usize::from(sel % 16);
    if let Ok(req) = Request::parse(payload, max_args) {
        assert!(!req.argv.is_empty() && !req.argv[0].is_empty() && req.argv.len() <= max_args);
        let mut wire = Vec::new();
        req.encode(&mut wire).expect("a parsed request encodes");
        assert_eq!(&wire[4..], payload, "a request re-encodes to other bytes");
        assert_eq!(Request::parse(&wire[4..], max_args).as_ref(), Ok(&req));
    }
    let max = usize::from(sel) + 1;
    let make = move || ReplyCodec::new().max_frame(max);
    let (replies, _) = same_both_ways(make, sel, payload, 4 + max, no_recovery);
    let replies: Vec<Reply> = replies.into_iter().flatten().collect();
    // Re-encoded without the small limit: a refusal's text was decoded lossily (invalid
    // UTF-8 becomes U+FFFD, three bytes), so it may come back longer.
    let mut wire = Vec::new();
    for r in &replies {
        ReplyCodec::new().encode(r, &mut wire).expect("a decoded reply encodes");
    }
    let (again, err) = decode(ReplyCodec::new, &[&wire], usize::MAX, no_recovery);
    assert_eq!(err, None, "re-encoded replies do not decode");
    assert_eq!(again.into_iter().flatten().collect::<Vec<_>>(), replies);
}

/// What a RESP stream decoded to: the requests' arguments, then the error.
type RespOutcome = (Vec<Vec<Vec<u8>>>, Option<String>);

/// Feeds `pieces` as the RESP connection does (append, decode from the front, drop what
/// was consumed); asserts the unconsumed bytes stay within `bound`.
fn resp_decode(limits: RespLimits, pieces: &[&[u8]], bound: usize) -> RespOutcome {
    let mut d = RespDecoder::new(limits);
    let mut buf = Vec::new();
    let mut reqs = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        let mut off = 0;
        loop {
            match d.decode(&buf[off..]) {
                Ok(Some(r)) => {
                    assert!(r.consumed > 0, "a request of no bytes");
                    let src = if r.inline { d.inline_bytes() } else { &buf[off..] };
                    let args: Vec<Vec<u8>> = d.args(src).map(<[u8]>::to_vec).collect();
                    assert!(r.inline || args.len() <= limits.max_args, "{} arguments", args.len());
                    if !args.is_empty() {
                        reqs.push(args);
                    }
                    off += r.consumed;
                }
                Ok(None) => break,
                Err(e) => return (reqs, Some(e.to_string())),
            }
        }
        buf.drain(..off);
        assert!(buf.len() <= bound, "{} bytes pending, over the bound of {bound}", buf.len());
    }
    (reqs, None)
}

/// The RESP request decoder with small limits: the same requests in two chunkings,
/// bounded pending input, and each request re-encoded as a multibulk decodes back.
///
/// # Examples
///
/// ```
/// torsion_protocols::fuzz_props::resp(b"\0*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n");
/// ```
pub fn resp(data: &[u8]) {
    let (sel, payload) = split(data);
    let limits = RespLimits {
        max_bulk: 1 + usize::from(sel % 64),
        max_args: 1 + usize::from(sel / 64) * 3,
        max_inline: 128,
    };
    // A header line, then every argument: its `$N` line, its bytes and CRLF.
    let bound =
        limits.max_inline + 2 + limits.max_args * (limits.max_bulk + 2 + limits.max_inline + 2);
    let [whole, cut] = two_chunkings(sel, payload);
    let a = resp_decode(limits, &whole, bound);
    let b = resp_decode(limits, &cut, bound);
    assert_eq!(a, b, "the requests differ between two chunkings");
    let mut wire = Vec::new();
    for req in &a.0 {
        wire.extend_from_slice(format!("*{}\r\n", req.len()).as_bytes());
        for arg in req {
            wire.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            wire.extend_from_slice(arg);
            wire.extend_from_slice(b"\r\n");
        }
    }
    // Inline requests are bounded by their line, not by `max_args`: decode without limits.
    let limits = RespLimits { max_bulk: usize::MAX, max_args: usize::MAX, ..limits };
    assert_eq!(resp_decode(limits, &[&wire], usize::MAX), (a.0, None));
}
