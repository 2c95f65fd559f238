//! HTTP client.
mod parser;
mod response;
mod url;
pub use parser::{ParseError, ResponseLimits, ResponseParser};
pub use response::Response;
pub use url::{Url, UrlError};
