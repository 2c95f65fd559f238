//! Decimal digits of integers, written without `core::fmt` (a per-message cost on the
//! HTTP and RESP reply paths).

/// Writes the decimal digits of `n` at the end of `tmp`; returns where they start.
pub(crate) fn write_digits(mut n: u64, tmp: &mut [u8; 20]) -> usize {
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return i;
        }
    }
}

/// The decimal form of `n` (with a `-` when negative), written into `tmp`.
pub(crate) fn format_i64(n: i64, tmp: &mut [u8; 20]) -> &[u8] {
    // |i64::MIN| has 19 digits: with the sign, 20 bytes hold every value.
    let mut i = write_digits(n.unsigned_abs(), tmp);
    if n < 0 {
        i -= 1;
        tmp[i] = b'-';
    }
    &tmp[i..]
}

/// Appends the decimal form of `n` to `out`.
pub(crate) fn push_u64(out: &mut Vec<u8>, n: u64) {
    let mut tmp = [0u8; 20];
    let i = write_digits(n, &mut tmp);
    out.extend_from_slice(&tmp[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_written_like_display_does() {
        for n in [0u64, 7, 10, 99, 200, 404, 1000, 65_535, u64::from(u32::MAX), u64::MAX] {
            let mut out = b"x".to_vec();
            push_u64(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
        for n in [0i64, -1, 9, -10, i64::MAX, i64::MIN, -123_456] {
            assert_eq!(format_i64(n, &mut [0; 20]), n.to_string().as_bytes());
        }
    }
}
