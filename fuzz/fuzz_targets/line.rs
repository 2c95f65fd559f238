//! Fuzz target `line`: the properties of `torsion_protocols::fuzz_props::line`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| torsion_protocols::fuzz_props::line(data));
