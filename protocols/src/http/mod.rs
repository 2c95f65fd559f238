//! HTTP/1.1 for the reactor: the client (`getPage`) in [`client`].

pub mod client;
