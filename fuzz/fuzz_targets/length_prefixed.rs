//! Fuzz target `length_prefixed`: the properties of `torsion_protocols::fuzz_props::length_prefixed`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| torsion_protocols::fuzz_props::length_prefixed(data));
