//! Fuzz target `http_head`: the properties of `torsion_protocols::fuzz_props::http_head`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| torsion_protocols::fuzz_props::http_head(data));
