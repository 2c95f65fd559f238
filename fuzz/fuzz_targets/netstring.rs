//! Fuzz target `netstring`: the properties of `torsion_protocols::fuzz_props::netstring`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| torsion_protocols::fuzz_props::netstring(data));
