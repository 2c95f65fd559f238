//! Reply encoding: RESP2 and RESP3 values appended to an output buffer, with the RESP3-only
//! types (null, map, set, push, double) falling back to their RESP2 forms.
//!
//! Tested below and through every command test.

/// An output buffer that replies are appended to, in the connection's protocol version.
///
/// # Examples
///
/// ```
/// use torsion_protocols::resp::Reply;
///
/// let mut buf = Vec::new();
/// let mut r = Reply::new(&mut buf, false);
/// r.array(2);
/// r.bulk(b"hello");
/// r.null();
/// assert_eq!(buf, b"*2\r\n$5\r\nhello\r\n$-1\r\n");
/// ```
#[derive(Debug)]
pub struct Reply<'b> {
    buf: &'b mut Vec<u8>,
    resp3: bool,
}

impl<'b> Reply<'b> {
    /// Replies into `buf`, in RESP3 if `resp3`.
    pub fn new(buf: &'b mut Vec<u8>, resp3: bool) -> Reply<'b> {
        Reply { buf, resp3 }
    }

    /// Whether replies are RESP3.
    pub fn is_resp3(&self) -> bool {
        self.resp3
    }

    /// Switches the version of the replies that follow (HELLO answers in the new one).
    pub fn set_resp3(&mut self, on: bool) {
        self.resp3 = on;
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// A simple string (`+text`); `text` must hold no CR or LF.
    pub fn simple(&mut self, text: &str) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(text.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An error (`-ERR text`, or `-CODE text` when `text` starts with its own code).
    pub fn error(&mut self, text: &str) {
        self.buf.push(b'-');
        // CR/LF would end the error early and desynchronise the client.
        self.buf.extend(text.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer (`:n`).
    pub fn int(&mut self, n: i64) {
        self.buf.push(b':');
        push_int(self.buf, n);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// A bulk string (`$len`).
    pub fn bulk(&mut self, data: &[u8]) {
        self.buf.push(b'$');
        push_int(self.buf, data.len() as i64);
        self.buf.extend_from_slice(b"\r\n");
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// A bulk string holding the decimal form of `n`.
    pub fn bulk_int(&mut self, n: i64) {
        let mut tmp = Vec::with_capacity(20);
        push_int(&mut tmp, n);
        self.bulk(&tmp);
    }

    /// A null bulk string: `$-1` in RESP2, `_` in RESP3.
    pub fn null(&mut self) {
        self.buf.extend_from_slice(if self.resp3 { b"_\r\n" } else { b"$-1\r\n" });
    }

    /// A null array: `*-1` in RESP2, `_` in RESP3.
    pub fn null_array(&mut self) {
        self.buf.extend_from_slice(if self.resp3 { b"_\r\n" } else { b"*-1\r\n" });
    }

    /// An array header for `n` elements that follow.
    pub fn array(&mut self, n: usize) {
        self.header(b'*', n);
    }

    /// A map header for `n` pairs that follow (RESP2: an array of `2n`).
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'%', n);
        } else {
            self.header(b'*', 2 * n);
        }
    }

    /// A set header for `n` elements that follow (RESP2: an array).
    pub fn set(&mut self, n: usize) {
        self.header(if self.resp3 { b'~' } else { b'*' }, n);
    }

    /// A push header (out-of-band pub/sub message) for `n` elements (RESP2: an array).
    pub fn push(&mut self, n: usize) {
        self.header(if self.resp3 { b'>' } else { b'*' }, n);
    }

    /// A verbatim text (RESP3 `=`, RESP2 a bulk string), as INFO and CLIENT LIST send.
    pub fn verbatim(&mut self, text: &[u8]) {
        if self.resp3 {
            self.buf.push(b'=');
            push_int(self.buf, text.len() as i64 + 4);
            self.buf.extend_from_slice(b"\r\ntxt:");
            self.buf.extend_from_slice(text);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }

    /// Bytes already encoded (a pub/sub message to ourselves).
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn header(&mut self, kind: u8, n: usize) {
        self.buf.push(kind);
        push_int(self.buf, n as i64);
        self.buf.extend_from_slice(b"\r\n");
    }
}

/// Appends the decimal form of `n`.
pub(crate) fn push_int(buf: &mut Vec<u8>, n: i64) {
    let mut tmp = [0u8; 20];
    buf.extend_from_slice(crate::decimal::format_i64(n, &mut tmp));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(resp3: bool, f: impl FnOnce(&mut Reply<'_>)) -> String {
        let mut buf = Vec::new();
        f(&mut Reply::new(&mut buf, resp3));
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn resp3_types_fall_back_to_their_resp2_forms() {
        let all = |r: &mut Reply<'_>| {
            r.map(1);
            r.bulk(b"k");
            r.int(i64::MIN);
            r.set(0);
            r.push(1);
            r.null();
            r.null_array();
            r.verbatim(b"x");
        };
        assert_eq!(
            encode(false, all),
            "*2\r\n$1\r\nk\r\n:-9223372036854775808\r\n*0\r\n*1\r\n$-1\r\n*-1\r\n$1\r\nx\r\n"
        );
        assert_eq!(
            encode(true, all),
            "%1\r\n$1\r\nk\r\n:-9223372036854775808\r\n~0\r\n>1\r\n_\r\n_\r\n=5\r\ntxt:x\r\n"
        );
    }

    #[test]
    fn errors_cannot_break_the_framing() {
        assert_eq!(encode(false, |r| r.error("ERR a\r\nb")), "-ERR a  b\r\n");
        assert_eq!(encode(false, |r| r.bulk_int(-42)), "$3\r\n-42\r\n");
    }
}
