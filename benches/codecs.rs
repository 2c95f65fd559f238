//! Criterion benchmarks of the sans-IO codecs: decode throughput for 64-byte and 4 KiB
//! frames, fed in 1-byte chunks and in 64 KiB chunks.
//!
//! Run: cargo bench --bench codecs            (add `-- --quick` for a fast pass)

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use torsion::protocols::codec::{
    Buffer, Decoder, Encoder, LengthPrefixed, LineCodec, NetstringCodec,
};

/// `total` bytes of `frame`-sized frames, encoded by `encode`.
fn input(frame: usize, total: usize, mut encode: impl FnMut(&[u8], &mut Vec<u8>)) -> Vec<u8> {
    let payload: Vec<u8> = (0..frame).map(|i| b'a' + (i % 26) as u8).collect();
    let mut out = Vec::with_capacity(total + frame);
    while out.len() < total {
        encode(&payload, &mut out);
    }
    out
}

fn decode_all<D: Decoder>(codec: &mut D, data: &[u8], chunk: usize) -> usize {
    let mut buf = Buffer::new();
    let mut frames = 0;
    for piece in data.chunks(chunk) {
        buf.extend(piece);
        while let Some(f) = codec.decode(&mut buf).expect("valid input") {
            black_box(f);
            frames += 1;
        }
    }
    frames
}

fn bench_codec<D: Decoder>(
    c: &mut Criterion,
    name: &str,
    make: impl Fn() -> D,
    encode: impl Fn(&[u8], &mut Vec<u8>) + Copy,
) {
    let mut g = c.benchmark_group(format!("decode_{name}"));
    g.sample_size(10);
    for frame in [64usize, 4096] {
        for (chunk, total) in [(64 * 1024, 8 << 20), (1, 256 << 10)] {
            let data = input(frame, total, encode);
            g.throughput(Throughput::Bytes(data.len() as u64));
            g.bench_function(format!("{frame}B_frames_{chunk}B_chunks"), |b| {
                b.iter(|| decode_all(&mut make(), &data, chunk))
            });
        }
    }
    g.finish();
}

fn codecs(c: &mut Criterion) {
    bench_codec(c, "line", LineCodec::lf, |p, out| {
        Encoder::<[u8]>::encode(&mut LineCodec::lf(), p, out).unwrap()
    });
    bench_codec(c, "netstring", NetstringCodec::new, |p, out| {
        NetstringCodec::new().encode(p, out).unwrap()
    });
    bench_codec(c, "int32", LengthPrefixed::int32, |p, out| {
        LengthPrefixed::int32().encode(p, out).unwrap()
    });
}

criterion_group!(benches, codecs);
criterion_main!(benches);
