//! `schema.sql` is the documented query interface: it must equal what the migrations build.

use rusqlite::Connection;

/// A comparable description of a database's schema: tables by their columns, keys and
/// foreign keys (ALTER TABLE rewrites a table's stored SQL text, so text is not compared
/// for tables), everything else by its SQL with comments and white space folded.
fn describe(conn: &Connection) -> Vec<String> {
    let mut out = Vec::new();
    let objects: Vec<(String, String, Option<String>)> = conn
        .prepare("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (kind, name, sql) in objects {
        if kind == "table" {
            for pragma in ["table_xinfo", "foreign_key_list", "index_list"] {
                let mut st = conn
                    .prepare(&format!("SELECT * FROM pragma_{pragma}('{name}')"))
                    .unwrap();
                let n = st.column_count();
                let rows = st
                    .query_map([], |r| {
                        Ok((0..n)
                            .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                            .collect::<Vec<_>>()
                            .join("|"))
                    })
                    .unwrap();
                for row in rows {
                    out.push(format!("table {name} {pragma}: {}", row.unwrap()));
                }
            }
            // CHECK constraints live only in the text; keep those clauses.
            let text = fold(sql.as_deref().unwrap_or_default());
            for check in text.split("CHECK").skip(1) {
                out.push(format!(
                    "table {name} check: {}",
                    check.split(')').next().unwrap_or_default()
                ));
            }
        } else {
            out.push(format!(
                "{kind} {name}: {}",
                fold(sql.as_deref().unwrap_or_default())
            ));
        }
    }
    out.sort();
    out
}

fn fold(sql: &str) -> String {
    sql.lines()
        .map(|l| l.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn schema_sql_equals_the_schema_the_migrations_build() {
    let mut migrated = Connection::open_in_memory().unwrap();
    payhook::store::migrations::migrate(&mut migrated).unwrap();
    let documented = Connection::open_in_memory().unwrap();
    documented
        .execute_batch(include_str!("../../schema.sql"))
        .unwrap();
    let (a, b) = (describe(&migrated), describe(&documented));
    assert!(a.len() > 20, "the description covers the schema: {a:#?}");
    for line in &a {
        assert!(
            b.contains(line),
            "migrations have, schema.sql lacks: {line}"
        );
    }
    for line in &b {
        assert!(a.contains(line), "schema.sql has, migrations lack: {line}");
    }
}

/// Every table and view has a comment above it, and every column a comment on its own
/// lines, except those the file's Conventions block documents once for all tables
/// (`provider`, and times in `*at_ms`).
#[test]
fn every_table_view_and_column_in_schema_sql_is_commented() {
    let text = include_str!("../../schema.sql");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut uncommented = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i];
        let is_create = t.starts_with("CREATE TABLE") || t.starts_with("CREATE VIEW");
        if is_create && !lines[i.saturating_sub(1)].starts_with("--") {
            uncommented.push(t.to_string());
        }
        if !t.starts_with("CREATE TABLE") {
            i += 1;
            continue;
        }
        // Column entries: a line starting with a lower-case name, plus its continuation
        // lines (CHECK clauses, comment lines) up to the next entry.
        i += 1;
        while i < lines.len() && !lines[i].starts_with(')') {
            let name = lines[i].split_whitespace().next().unwrap_or_default();
            let is_column = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            let mut entry = vec![lines[i]];
            i += 1;
            while i < lines.len() && !lines[i].starts_with(')') {
                let next = lines[i].split_whitespace().next().unwrap_or_default();
                if next
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && !next.is_empty()
                {
                    break;
                }
                entry.push(lines[i]);
                i += 1;
            }
            let exempt = name == "provider" || name.ends_with("at_ms");
            if is_column && !exempt && !entry.iter().any(|l| l.contains("--")) {
                uncommented.push(entry.join(" "));
            }
        }
    }
    assert!(
        uncommented.is_empty(),
        "undocumented in schema.sql: {uncommented:#?}"
    );
}
