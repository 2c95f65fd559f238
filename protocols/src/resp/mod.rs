//! A Redis-speaking key-value server on the reactor (in progress): the RESP codec and the
//! reply encoder.

mod codec;
mod reply;

pub use codec::{Decoded, ProtocolError, RespDecoder, RespLimits};
pub use reply::Reply;
