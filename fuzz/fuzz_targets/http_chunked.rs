//! Fuzz target `http_chunked`: the properties of `torsion_protocols::fuzz_props::http_chunked`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| torsion_protocols::fuzz_props::http_chunked(data));
