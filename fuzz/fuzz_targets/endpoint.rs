//! Fuzz target `endpoint`: the properties of `torsion_protocols::fuzz_props::endpoint`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| torsion_protocols::fuzz_props::endpoint(data));
