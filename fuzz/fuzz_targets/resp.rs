//! Fuzz target `resp`: the properties of `torsion_protocols::fuzz_props::resp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| torsion_protocols::fuzz_props::resp(data));
