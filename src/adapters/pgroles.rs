//! Making a plain-format dump restorable in a cluster that lacks its roles.
//!
//! A throwaway drill cluster has only its superuser, and a plain dump says
//! `ALTER TABLE … OWNER TO app_owner;` and `GRANT SELECT … TO reporting;`.
//! Custom dumps get `pg_restore --no-owner --no-privileges`; psql has no such
//! switch, and dropping statements from a stream of SQL is unsafe. So the
//! stream passes through [`RoleCreator`], which reads each SQL line before
//! psql gets it and has every role it names created first. Creating a role
//! too many in a throwaway cluster is harmless, so the scan can be simple;
//! COPY data is passed through unread.

use std::collections::HashSet;
use std::io::Write;

use crate::error::Result;

/// A writer that, before passing on a line of SQL, calls `create` once for
/// every role the line names as owner, grantee or grantor.
pub struct RoleCreator<'a> {
    inner: &'a mut dyn Write,
    create: &'a mut dyn FnMut(&str) -> Result<()>,
    /// The SQL line being gathered (outside COPY data).
    line: Vec<u8>,
    /// Inside `COPY … FROM stdin;` data, up to the `\.` line.
    in_copy: bool,
    /// The first bytes of the current COPY data line, to spot `\.`.
    copy_head: Vec<u8>,
    seen: HashSet<String>,
}

impl<'a> RoleCreator<'a> {
    pub fn new(inner: &'a mut dyn Write, create: &'a mut dyn FnMut(&str) -> Result<()>) -> Self {
        RoleCreator {
            inner,
            create,
            line: Vec::new(),
            in_copy: false,
            copy_head: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Pass on the last line, which had no newline.
    pub fn finish(mut self) -> std::io::Result<()> {
        if !self.line.is_empty() {
            self.end_line()?;
        }
        self.inner.flush()
    }

    fn end_line(&mut self) -> std::io::Result<()> {
        let text = String::from_utf8_lossy(&self.line).into_owned();
        for role in roles_named(&text) {
            if self.seen.insert(role.clone()) {
                (self.create)(&role).map_err(std::io::Error::other)?;
            }
        }
        let t = text.trim_end();
        if t.starts_with("COPY ") && t.ends_with("FROM stdin;") {
            self.in_copy = true;
        }
        self.inner.write_all(&self.line)?;
        self.line.clear();
        Ok(())
    }
}

impl Write for RoleCreator<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut i = 0;
        while i < buf.len() {
            let rest = &buf[i..];
            let nl = rest.iter().position(|&b| b == b'\n');
            let upto = nl.map_or(rest.len(), |p| p + 1);
            if self.in_copy {
                // data rows go straight through
                let head_room = 3usize.saturating_sub(self.copy_head.len());
                self.copy_head
                    .extend_from_slice(&rest[..upto.min(head_room)]);
                self.inner.write_all(&rest[..upto])?;
                if nl.is_some() {
                    if self.copy_head.starts_with(b"\\.\n") || self.copy_head == b"\\.\r" {
                        self.in_copy = false;
                    }
                    self.copy_head.clear();
                }
            } else {
                self.line.extend_from_slice(&rest[..upto]);
                if nl.is_some() {
                    self.end_line()?;
                }
            }
            i += upto;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // a partial SQL line stays until its end is seen
        self.inner.flush()
    }
}

/// The roles a line of pg_dump's SQL names, PUBLIC and the like left out.
pub fn roles_named(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let after = |marker: &str, out: &mut Vec<String>| {
        let mut from = 0;
        while let Some(p) = line[from..].find(marker) {
            let start = from + p + marker.len();
            out.extend(idents(&line[start..]));
            from = start;
        }
    };
    after(" OWNER TO ", &mut out);
    after(" FOR ROLE ", &mut out);
    after(" GRANTED BY ", &mut out);
    let grant = line.starts_with("GRANT ") || line.contains(" GRANT ");
    let revoke = line.starts_with("REVOKE ") || line.contains(" REVOKE ");
    if grant && !line.starts_with("REVOKE ") {
        if let Some(p) = line.rfind(" TO ") {
            out.extend(idents(&line[p + 4..]));
        }
    } else if revoke && let Some(p) = line.rfind(" FROM ") {
        out.extend(idents(&line[p + 6..]));
    }
    if let Some(rest) = line.strip_prefix("SET SESSION AUTHORIZATION '")
        && let Some(end) = rest.find("';")
    {
        out.push(rest[..end].replace("''", "'"));
    }
    const NOT_ROLES: &[&str] = &[
        "public",
        "current_user",
        "current_role",
        "session_user",
        "with",
        "granted",
    ];
    out.retain(|r| !r.is_empty() && !NOT_ROLES.contains(&r.to_ascii_lowercase().as_str()));
    out
}

/// A comma-separated list of identifiers at the start of `s`, up to `;`,
/// end of line or a following keyword.
fn idents(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut name = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        name.push('"');
                    } else {
                        break;
                    }
                } else {
                    name.push(c);
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c == ';' || c.is_whitespace() {
                    break;
                }
                name.push(c);
                chars.next();
            }
        }
        if name.is_empty() {
            break;
        }
        out.push(name);
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek() == Some(&',') {
            chars.next();
        } else {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_owners_grantees_and_grantors() {
        assert_eq!(
            roles_named("ALTER TABLE public.items OWNER TO app_owner;"),
            ["app_owner"]
        );
        assert_eq!(
            roles_named("GRANT SELECT ON TABLE public.items TO reporting, \"Odd, Name\";"),
            ["reporting", "Odd, Name"]
        );
        assert_eq!(
            roles_named("REVOKE ALL ON SCHEMA public FROM PUBLIC;"),
            Vec::<String>::new()
        );
        assert_eq!(
            roles_named("GRANT ALL ON SCHEMA s TO a WITH GRANT OPTION GRANTED BY b;"),
            ["b", "a"]
        );
        assert_eq!(
            roles_named(
                "ALTER DEFAULT PRIVILEGES FOR ROLE o IN SCHEMA public GRANT SELECT ON TABLES TO r;"
            ),
            ["o", "r"]
        );
        assert_eq!(roles_named("SET SESSION AUTHORIZATION 'x''y';"), ["x'y"]);
        assert!(roles_named("CREATE TABLE t (a int);").is_empty());
    }

    #[test]
    fn roles_are_created_before_their_line_and_copy_data_is_not_read() {
        let sql = "CREATE TABLE t (a text);\n\
                   COPY t (a) FROM stdin;\n\
                   x OWNER TO not_a_role\n\
                   \\.\n\
                   ALTER TABLE t OWNER TO owner1;\n\
                   GRANT SELECT ON TABLE t TO reader;\n\
                   ALTER TABLE u OWNER TO owner1;";
        // psql's side of the pipe, readable while the stream is written
        struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let psql_got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut sink = Shared(psql_got.clone());
        let mut roles: Vec<String> = Vec::new();
        let mut create = |r: &str| {
            let got = String::from_utf8(psql_got.borrow().clone()).unwrap();
            assert!(!got.contains(&format!("TO {r};")), "{r} created too late");
            roles.push(r.to_string());
            Ok(())
        };
        let mut w = RoleCreator::new(&mut sink, &mut create);
        // odd-sized writes split lines anywhere
        for piece in sql.as_bytes().chunks(7) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap();
        assert_eq!(
            *psql_got.borrow(),
            sql.as_bytes(),
            "the stream passes through unchanged"
        );
        assert_eq!(
            roles,
            ["owner1", "reader"],
            "once each, none from COPY data"
        );
    }
}
