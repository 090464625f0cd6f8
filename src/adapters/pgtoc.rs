//! Picking the archive entries that make up one table, from the table of
//! contents `pg_restore --list --verbose` prints.
//!
//! `pg_restore -t T` restores T's definition and rows but none of its
//! subsidiary objects, so after `--clean` the table comes back without its
//! primary key, indexes, triggers or owned sequences. We restore instead
//! with `--use-list` holding T and everything that depends on it through
//! objects of those kinds. The verbose list gives each entry's dependencies
//! (";\tdepends on: 218 3215"), which is what ties an index to its table
//! (the index line names only the index).

use std::collections::BTreeSet;

use crate::error::{Error, Result};

/// One line of the list: its dump id, its kind ("TABLE DATA") and the rest
/// ("public notes owner").
#[derive(Debug, Clone)]
struct TocEntry {
    id: u32,
    line: String,
    kind: String,
    rest: String,
    depends_on: Vec<u32>,
}

/// Kinds that belong to the table they depend on and go with it when it is
/// dropped and restored. Views, functions and other tables that merely use
/// the table are not among them.
const SUBSIDIARY: &[&str] = &[
    "TABLE DATA",
    "COMMENT",
    "ACL",
    "SECURITY LABEL",
    "SEQUENCE",
    "SEQUENCE OWNED BY",
    "SEQUENCE SET",
    "DEFAULT",
    "CONSTRAINT",
    "CHECK CONSTRAINT",
    "FK CONSTRAINT",
    "INDEX",
    "INDEX ATTACH",
    "TRIGGER",
    "RULE",
    "POLICY",
    "ROW SECURITY",
    "STATISTICS",
    "STATISTICS DATA",
];

/// Kinds of more than one word whose first word is also a kind (or would
/// be taken for one); any other kind is read as the first word, which is
/// enough to tell the kinds above from the rest.
const LONG_KINDS: &[&str] = &[
    "TABLE DATA",
    "TABLE ATTACH",
    "SEQUENCE OWNED BY",
    "SEQUENCE SET",
    "FK CONSTRAINT",
    "CHECK CONSTRAINT",
    "INDEX ATTACH",
    "ROW SECURITY",
    "SECURITY LABEL",
    "DEFAULT ACL",
    "STATISTICS DATA",
];

fn kind_of(desc: &str) -> String {
    LONG_KINDS
        .iter()
        .find(|k| desc.starts_with(&format!("{k} ")))
        .map(|k| k.to_string())
        .unwrap_or_else(|| desc.split(' ').next().unwrap_or("").to_string())
}

/// Entries every restore needs, whatever it selects.
const SETTINGS: &[&str] = &["ENCODING", "STDSTRINGS", "SEARCHPATH"];

fn parse(list: &str) -> Vec<TocEntry> {
    let mut out: Vec<TocEntry> = Vec::new();
    for line in list.lines() {
        if let Some(deps) = line.strip_prefix(";\tdepends on:") {
            if let Some(last) = out.last_mut() {
                last.depends_on = deps
                    .split_whitespace()
                    .filter_map(|d| d.parse().ok())
                    .collect();
            }
            continue;
        }
        if line.starts_with(';') {
            continue;
        }
        // "218; 1259 16394 TABLE public notes owner"
        let Some((id, after)) = line.split_once("; ") else {
            continue;
        };
        let Ok(id) = id.trim().parse() else { continue };
        let mut words = after.splitn(3, ' ');
        let (Some(_), Some(_), Some(desc)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let kind = kind_of(desc);
        let rest = desc[kind.len()..].trim_start().to_string();
        out.push(TocEntry {
            id,
            line: line.to_string(),
            kind,
            rest,
            depends_on: Vec::new(),
        });
    }
    out
}

/// Does `rest` ("schema name owner") name the table `wanted` ("name" in any
/// schema, or "schema.name")?
fn names_table(rest: &str, wanted: &str) -> bool {
    let Some((schema, name_owner)) = rest.split_once(' ') else {
        return false;
    };
    // the owner is the last word (empty when dumped with --no-owner)
    let name = name_owner
        .rsplit_once(' ')
        .map_or(name_owner, |(name, _owner)| name);
    name == wanted || format!("{schema}.{name}") == wanted
}

/// The list to give `pg_restore --use-list` so that it restores `tables`
/// with everything that belongs to them, in archive order (a streamed
/// archive can only be read forwards).
pub fn table_list(list: &str, tables: &[String]) -> Result<String> {
    let entries = parse(list);
    let mut picked: BTreeSet<u32> = BTreeSet::new();
    for t in tables {
        let found: Vec<u32> = entries
            .iter()
            .filter(|e| e.kind == "TABLE" && names_table(&e.rest, t))
            .map(|e| e.id)
            .collect();
        match found.len() {
            0 => {
                return Err(Error::not_found(format!("the dump has no table {t:?}"))
                    .with_hint("name a table of the dump, as NAME or SCHEMA.NAME"));
            }
            1 => picked.extend(found),
            _ => {
                return Err(Error::usage(format!(
                    "the dump has {} tables named {t:?}",
                    found.len()
                ))
                .with_hint("name it as SCHEMA.NAME"));
            }
        }
    }
    // close over dependencies: an index depends on its table, a sequence's
    // SEQUENCE SET on the sequence, another table's foreign key on this
    // table's primary key (dropping the key takes the foreign key with it)
    loop {
        let before = picked.len();
        for e in &entries {
            if !picked.contains(&e.id)
                && SUBSIDIARY.contains(&e.kind.as_str())
                && e.depends_on.iter().any(|d| picked.contains(d))
            {
                picked.insert(e.id);
            }
        }
        if picked.len() == before {
            break;
        }
    }
    let mut out = String::new();
    for e in &entries {
        if picked.contains(&e.id) || SETTINGS.contains(&e.kind.as_str()) {
            out.push_str(&e.line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // `pg_restore -l -v` of a PostgreSQL 15 custom dump (trimmed header)
    const LIST: &str = "\
;
; Selected TOC Entries:
;
3374; 0 0 ENCODING - ENCODING 
3375; 0 0 STDSTRINGS - STDSTRINGS 
3376; 0 0 SEARCHPATH - SEARCHPATH 
3377; 1262 5 DATABASE - postgres postgres
221; 1255 16417 FUNCTION public f() postgres
219; 1259 16408 TABLE public my tab postgres
218; 1259 16394 TABLE public notes postgres
3379; 0 0 COMMENT public TABLE notes postgres
;\tdepends on: 218
3380; 0 0 ACL public TABLE notes postgres
;\tdepends on: 218
216; 1259 16392 SEQUENCE public notes_id_seq postgres
;\tdepends on: 218
3381; 0 0 SEQUENCE OWNED BY public notes_id_seq postgres
;\tdepends on: 216
215; 1259 16386 TABLE public orders postgres
214; 1259 16385 SEQUENCE public orders_id_seq postgres
;\tdepends on: 215
220; 1259 16413 VIEW public v postgres
;\tdepends on: 218 218
3213; 2604 16397 DEFAULT public notes id postgres
;\tdepends on: 216 218 218
3371; 0 16408 TABLE DATA public my tab postgres
;\tdepends on: 219
3370; 0 16394 TABLE DATA public notes postgres
;\tdepends on: 218
3367; 0 16386 TABLE DATA public orders postgres
;\tdepends on: 215
3383; 0 0 SEQUENCE SET public notes_id_seq postgres
;\tdepends on: 216
3220; 2606 16412 CONSTRAINT public my tab my tab_x_key postgres
;\tdepends on: 219
3218; 2606 16401 CONSTRAINT public notes notes_pkey postgres
;\tdepends on: 218
3215; 2606 16391 CONSTRAINT public orders orders_pkey postgres
;\tdepends on: 215
3216; 1259 16407 INDEX public notes_body postgres
;\tdepends on: 218
3222; 2620 16418 TRIGGER public notes t postgres
;\tdepends on: 221 218
3221; 2606 16402 FK CONSTRAINT public notes notes_order_id_fkey postgres
;\tdepends on: 3215 218 215
3223; 2606 16403 FK CONSTRAINT public orders orders_note_fkey postgres
;\tdepends on: 3218 215
";

    fn ids(list: &str) -> Vec<u32> {
        list.lines()
            .map(|l| l.split(';').next().unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn a_table_comes_with_its_keys_indexes_triggers_and_sequences() {
        let l = table_list(LIST, &["notes".into()]).unwrap();
        assert_eq!(
            ids(&l),
            vec![
                3374, 3375, 3376, 218, 3379, 3380, 216, 3381, 3213, 3370, 3383, 3218, 3216, 3222,
                3221, 3223
            ],
            "{l}"
        );
    }

    #[test]
    fn views_and_other_tables_stay_out() {
        let l = table_list(LIST, &["public.orders".into()]).unwrap();
        assert_eq!(
            ids(&l),
            vec![3374, 3375, 3376, 215, 214, 3367, 3215, 3221, 3223],
            "{l}"
        );
    }

    #[test]
    fn names_with_spaces_and_missing_tables() {
        let l = table_list(LIST, &["my tab".into()]).unwrap();
        assert_eq!(ids(&l), vec![3374, 3375, 3376, 219, 3371, 3220]);
        let e = table_list(LIST, &["nope".into()]).unwrap_err();
        assert!(e.to_string().contains("no table \"nope\""), "{e}");
    }
}
