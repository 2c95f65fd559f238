//! Fuzz target `http_server`: the properties of `torsion_protocols::fuzz_props::http_server`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| torsion_protocols::fuzz_props::http_server(data));
