//! Fuzz target `http_url`: the properties of `torsion_protocols::fuzz_props::http_url`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| torsion_protocols::fuzz_props::http_url(data));
