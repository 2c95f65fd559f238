//! Redis's glob patterns (`*`, `?`, `[abc]`, `[^a-z]`, `\x`) for KEYS, SCAN MATCH and
//! PSUBSCRIBE.
//!
//! Tested below.

/// Whether `s` matches `pattern`, as Redis's `stringmatchlen` (case-sensitive).
// Each arm falls through to the backtrack below when it does not match; collapsing the
// inner `if`s into guards would send a non-matching `\x` or `[..]` to the literal arm.
#[allow(clippy::collapsible_match)]
pub(crate) fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    // Iterative with one backtrack point for the last `*`: linear-ish, never exponential.
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, i));
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(pattern, p, s[i]) {
                        if matched {
                            p = next;
                            i += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == s[i] {
                        p += 2;
                        i += 1;
                        continue;
                    }
                }
                c if c == s[i] => {
                    p += 1;
                    i += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[p] == '['`: (matched, index after).
fn class(pattern: &[u8], p: usize, c: u8) -> Option<(bool, usize)> {
    let mut j = p + 1;
    let not = pattern.get(j) == Some(&b'^');
    if not {
        j += 1;
    }
    let mut matched = false;
    loop {
        match pattern.get(j) {
            // An unterminated class: Redis treats the end as closing it.
            None => break,
            Some(b']') => {
                j += 1;
                break;
            }
            Some(b'\\') if j + 1 < pattern.len() => {
                matched |= pattern[j + 1] == c;
                j += 2;
            }
            Some(&lo) if pattern.get(j + 1) == Some(&b'-') && j + 2 < pattern.len() => {
                let hi = pattern[j + 2];
                let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                matched |= (lo..=hi).contains(&c);
                j += 3;
            }
            Some(&x) => {
                matched |= x == c;
                j += 1;
            }
        }
    }
    Some((matched != not, j))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_like_redis() {
        let yes: &[(&str, &str)] = &[
            ("*", ""),
            ("h?llo", "hello"),
            ("h*llo", "heeeello"),
            ("h[ae]llo", "hallo"),
            ("h[^e]llo", "hallo"),
            ("h[a-b]llo", "hbllo"),
            ("news.*", "news.art"),
            ("a\\*b", "a*b"),
            ("*a*b*c", "xxaxxbxxc"),
        ];
        for (p, s) in yes {
            assert!(glob_match(p.as_bytes(), s.as_bytes()), "{p} ~ {s}");
        }
        let no: &[(&str, &str)] =
            &[("h?llo", "hllo"), ("h[^e]llo", "hello"), ("news.*", "news"), ("a\\*b", "axb")];
        for (p, s) in no {
            assert!(!glob_match(p.as_bytes(), s.as_bytes()), "{p} !~ {s}");
        }
        let long = "a".repeat(10_000);
        assert!(!glob_match(b"*a*a*a*a*a*a*a*b", long.as_bytes()));
    }
}
