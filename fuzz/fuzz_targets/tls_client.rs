//! Fuzz target `tls_client`: the properties of `torsion_protocols::fuzz_props` for the TLS record
//! path (`torsion_reactor::fuzz_tls::tls_client`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| torsion_reactor::fuzz_tls::tls_client(data));
