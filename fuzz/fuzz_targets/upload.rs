//! Fuzz target `upload`: the properties of `torsion_protocols::fuzz_props::upload`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| torsion_protocols::fuzz_props::upload(data));
