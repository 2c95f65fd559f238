//! Fuzz target `http_response`: the properties of `torsion_protocols::fuzz_props::http_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| torsion_protocols::fuzz_props::http_response(data));
