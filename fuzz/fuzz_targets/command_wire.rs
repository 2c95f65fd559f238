//! Fuzz target `command_wire`: the properties of `torsion_protocols::fuzz_props::command_wire`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| torsion_protocols::fuzz_props::command_wire(data));
