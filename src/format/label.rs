//! Text fields of the repository's plaintext files (key files, locks):
//! host and user names, commands, times. They are shown on terminals (`key
//! list`, "repository locked by …"), and the storage is not trusted
//! (format-spec/threat-model.md): a field holding an escape sequence could
//! rewrite the user's screen. Readers reject control characters and
//! oversized fields; writers replace and cut them.

use crate::error::{Error, Result};

/// The most bytes of a host or user name, or a command, in these files.
pub const MAX_LABEL: usize = 255;
/// The most bytes of a time (RFC 3339 with nanoseconds takes 30).
pub const MAX_TIME: usize = 64;

/// `s` is fit to show: no control character (Unicode category Cc: C0, DEL,
/// C1) and at most `max` bytes. The error names the field, never its bytes.
pub fn check(what: &str, s: &str, max: usize) -> Result<()> {
    if s.chars().any(char::is_control) {
        return Err(Error::corrupt(format!("{what} holds a control character")));
    }
    if s.len() > max {
        return Err(Error::corrupt(format!(
            "{what} is {} bytes, more than {max}",
            s.len()
        )));
    }
    Ok(())
}

/// What a writer stores for `s`: control characters replaced with `?`, cut
/// to at most `max` bytes at a character boundary, so that [`check`]
/// accepts it.
pub fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        let c = if c.is_control() { '?' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// A name from a storage listing, or a parser's message about a planted
/// file (serde repeats unknown field names), for a message: control
/// characters escaped (`\u{1b}`), the rest as it is.
pub fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c.is_control() {
            true => out.extend(c.escape_unicode()),
            false => out.push(c),
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_oversized_fields_are_rejected_and_cleaned() {
        check("host", "db1.example.org", MAX_LABEL).unwrap();
        check("user", "José", MAX_LABEL).unwrap();
        for bad in [
            "a\u{1b}]0;title\u{7}",
            "line\nbreak",
            "del\u{7f}",
            "csi\u{9b}2J",
        ] {
            let e = check("host", bad, MAX_LABEL).unwrap_err();
            assert!(
                e.message().contains("host holds a control character"),
                "{e}"
            );
            assert!(
                !e.message().contains('\u{1b}'),
                "the error never repeats the field"
            );
            let c = clean(bad, MAX_LABEL);
            assert!(check("host", &c, MAX_LABEL).is_ok(), "{c:?}");
            assert_eq!(c.chars().count(), bad.chars().count());
        }
        assert_eq!(shown("0123abcd"), "0123abcd");
        assert_eq!(shown("k\u{1b}[2J\n"), "k\\u{1b}[2J\\u{a}");
        let long = "é".repeat(200); // 400 bytes
        assert!(check("user", &long, MAX_LABEL).is_err());
        let cut = clean(&long, MAX_LABEL);
        assert_eq!(cut.len(), 254, "cut at a character boundary");
        check("user", &cut, MAX_LABEL).unwrap();
    }
}
