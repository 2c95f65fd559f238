//! Fuzz target `tls_server`: the properties of `torsion_protocols::fuzz_props` for the TLS record
//! path (`torsion_reactor::fuzz_tls::tls_server`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| torsion_reactor::fuzz_tls::tls_server(data));
