//! The table a sink writes: its columns, append or upsert, and the batched statements that
//! apply one commit's changes.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, Statement};

use crate::value::SqlValue;
use crate::PostgresError;

/// Rows per statement at most (PostgreSQL takes up to 65535 parameters per statement).
const MAX_ROWS_PER_STATEMENT: usize = 1000;

/// One change a sink applies to its table.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Insert this row (append), or insert or replace the row with its key (upsert). Values
    /// in the table's column order.
    Row(Vec<SqlValue>),
    /// Delete the row with this key (upsert tables only). Values in the key's column order.
    Delete(Vec<SqlValue>),
}

/// A table and how a sink writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    name: String,
    columns: Vec<String>,
    /// Positions in `columns` of the key; empty for an append table.
    key: Vec<usize>,
}

impl Table {
    /// A table every row is appended to (`INSERT`): exactly once means each input record's
    /// row appears once.
    ///
    /// # Errors
    /// When there are no columns or a name is empty.
    pub fn append(name: &str, columns: &[&str]) -> Result<Table, PostgresError> {
        Self::new(name, columns, &[])
    }

    /// A table holding the latest row per key (`INSERT … ON CONFLICT (key) DO UPDATE`;
    /// [`Change::Delete`] removes a key). The key's columns need a unique index.
    ///
    /// # Errors
    /// When there are no key columns or one is not among `columns`.
    pub fn upsert(name: &str, columns: &[&str], key: &[&str]) -> Result<Table, PostgresError> {
        if key.is_empty() {
            return Err(PostgresError::Table {
                table: name.to_owned(),
                reason: "an upsert table needs key columns".to_owned(),
            });
        }
        Self::new(name, columns, key)
    }

    fn new(name: &str, columns: &[&str], key: &[&str]) -> Result<Table, PostgresError> {
        let invalid = |reason: String| PostgresError::Table {
            table: name.to_owned(),
            reason,
        };
        if name.is_empty() || columns.is_empty() || columns.iter().any(|c| c.is_empty()) {
            return Err(invalid("the table and its columns need names".to_owned()));
        }
        let key = key
            .iter()
            .map(|k| {
                columns.iter().position(|c| c == k).ok_or_else(|| {
                    invalid(format!(
                        "key column `{k}` is not among the columns {columns:?}"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Table {
            name: name.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            key,
        })
    }

    /// The table's name as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks that `change` fits the table: a row of every column, a delete of the key's
    /// columns on an upsert table. The error says what was expected.
    pub fn check(&self, change: &Change) -> Result<(), String> {
        match change {
            Change::Row(values) if values.len() != self.columns.len() => Err(format!(
                "a row of {} values for the {} columns {:?} of table `{}`",
                values.len(),
                self.columns.len(),
                self.columns,
                self.name
            )),
            Change::Delete(_) if self.key.is_empty() => Err(format!(
                "a delete for append table `{}` (only upsert tables delete)",
                self.name
            )),
            Change::Delete(values) if values.len() != self.key.len() => Err(format!(
                "a delete with {} key values for the {} key columns of table `{}`",
                values.len(),
                self.key.len(),
                self.name
            )),
            _ => Ok(()),
        }
    }

    /// Applies `changes` (checked) in the open transaction of `client`; for an upsert table
    /// only each key's last change counts. Returns the rows written or deleted.
    pub(crate) fn apply(
        &self,
        client: &mut Client,
        statements: &mut HashMap<(bool, usize), Statement>,
        changes: &[Change],
    ) -> Result<u64, postgres::Error> {
        let (rows, deletes) = self.last_per_key(changes);
        let mut written = 0;
        for (delete, batch, width) in [
            (true, deletes, self.key.len()),
            (false, rows, self.columns.len()),
        ] {
            if batch.is_empty() {
                continue;
            }
            for chunk in batch.chunks(MAX_ROWS_PER_STATEMENT.min(65535 / width)) {
                let statement = match statements.get(&(delete, chunk.len())) {
                    Some(s) => s.clone(),
                    None => {
                        let s = client.prepare(&self.sql(delete, chunk.len()))?;
                        statements.insert((delete, chunk.len()), s.clone());
                        s
                    }
                };
                let params: Vec<&(dyn ToSql + Sync)> = chunk
                    .iter()
                    .flat_map(|values| values.iter().map(|v| v as &(dyn ToSql + Sync)))
                    .collect();
                written += client.execute(&statement, &params)?;
            }
        }
        Ok(written)
    }

    /// Rows to insert and keys to delete: all rows for an append table; each key's last
    /// change for an upsert table (one statement may not touch a row twice).
    fn last_per_key<'c>(
        &self,
        changes: &'c [Change],
    ) -> (Vec<&'c [SqlValue]>, Vec<&'c [SqlValue]>) {
        if self.key.is_empty() {
            let rows = changes
                .iter()
                .filter_map(|c| match c {
                    Change::Row(values) => Some(values.as_slice()),
                    Change::Delete(_) => None,
                })
                .collect();
            return (rows, Vec::new());
        }
        let mut last: HashMap<String, usize> = HashMap::new();
        for (i, change) in changes.iter().enumerate() {
            let key = match change {
                Change::Row(values) => self.key.iter().map(|k| &values[*k]).collect::<Vec<_>>(),
                Change::Delete(values) => values.iter().collect(),
            };
            last.insert(format!("{key:?}"), i);
        }
        let mut order: Vec<usize> = last.into_values().collect();
        order.sort_unstable();
        let (mut rows, mut deletes) = (Vec::new(), Vec::new());
        for i in order {
            match &changes[i] {
                Change::Row(values) => rows.push(values.as_slice()),
                Change::Delete(values) => deletes.push(values.as_slice()),
            }
        }
        (rows, deletes)
    }

    /// The statement for `n` rows (or `n` keys to delete).
    fn sql(&self, delete: bool, n: usize) -> String {
        let table = quote_name(&self.name);
        let key: Vec<String> = self.key.iter().map(|k| quote(&self.columns[*k])).collect();
        let width = if delete {
            key.len()
        } else {
            self.columns.len()
        };
        let tuples: Vec<String> = (0..n)
            .map(|row| {
                let params: Vec<String> = (1..=width)
                    .map(|c| format!("${}", row * width + c))
                    .collect();
                format!("({})", params.join(","))
            })
            .collect();
        if delete {
            return format!(
                "DELETE FROM {table} WHERE ({}) IN ({})",
                key.join(","),
                tuples.join(",")
            );
        }
        let columns: Vec<String> = self.columns.iter().map(|c| quote(c)).collect();
        let mut sql = format!(
            "INSERT INTO {table} ({}) VALUES {}",
            columns.join(","),
            tuples.join(",")
        );
        if !self.key.is_empty() {
            let updates: Vec<String> = (0..self.columns.len())
                .filter(|c| !self.key.contains(c))
                .map(|c| format!("{0} = EXCLUDED.{0}", columns[c]))
                .collect();
            if updates.is_empty() {
                sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", key.join(",")));
            } else {
                sql.push_str(&format!(
                    " ON CONFLICT ({}) DO UPDATE SET {}",
                    key.join(","),
                    updates.join(",")
                ));
            }
        }
        sql
    }
}

/// `identifier` quoted for SQL.
pub(crate) fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// A possibly schema-qualified name (`schema.table`), each part quoted.
pub(crate) fn quote_name(name: &str) -> String {
    name.split('.').map(quote).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_name_every_column_and_parameter() {
        let append = Table::append("public.orders", &["id", "amount"]).unwrap();
        assert_eq!(
            append.sql(false, 2),
            r#"INSERT INTO "public"."orders" ("id","amount") VALUES ($1,$2),($3,$4)"#
        );
        let upsert = Table::upsert("totals", &["customer", "total"], &["customer"]).unwrap();
        assert_eq!(
            upsert.sql(false, 1),
            r#"INSERT INTO "totals" ("customer","total") VALUES ($1,$2) ON CONFLICT ("customer") DO UPDATE SET "total" = EXCLUDED."total""#
        );
        assert_eq!(
            upsert.sql(true, 2),
            r#"DELETE FROM "totals" WHERE ("customer") IN (($1),($2))"#
        );
        let keys_only = Table::upsert("seen", &["id"], &["id"]).unwrap();
        assert!(keys_only
            .sql(false, 1)
            .ends_with(r#"ON CONFLICT ("id") DO NOTHING"#));
        assert_eq!(quote(r#"we"ird"#), r#""we""ird""#);
    }

    #[test]
    fn an_upsert_batch_keeps_each_keys_last_change() {
        let t = Table::upsert("totals", &["customer", "total"], &["customer"]).unwrap();
        let changes = vec![
            Change::Row(vec!["a".into(), 1.into()]),
            Change::Row(vec!["b".into(), 2.into()]),
            Change::Row(vec!["a".into(), 3.into()]),
            Change::Delete(vec!["b".into()]),
        ];
        let (rows, deletes) = t.last_per_key(&changes);
        assert_eq!(rows, vec![&[SqlValue::from("a"), SqlValue::from(3)][..]]);
        assert_eq!(deletes, vec![&[SqlValue::from("b")][..]]);
        let append = Table::append("log", &["customer", "total"]).unwrap();
        assert_eq!(
            append.last_per_key(&changes[..3]).0.len(),
            3,
            "an append table keeps every row"
        );
    }

    #[test]
    fn bad_tables_and_changes_are_named() {
        let e = Table::upsert("t", &["a"], &["b"]).unwrap_err().to_string();
        assert!(e.contains("`b`") && e.contains("`t`"), "{e}");
        assert!(Table::upsert("t", &["a"], &[]).is_err());
        assert!(Table::append("t", &[]).is_err());
        let t = Table::append("log", &["a", "b"]).unwrap();
        let e = t.check(&Change::Row(vec![1.into()])).unwrap_err();
        assert!(e.contains("1 values") && e.contains("`log`"), "{e}");
        assert!(t
            .check(&Change::Delete(vec![1.into()]))
            .unwrap_err()
            .contains("append table"));
        assert!(t
            .check(&Change::Row(vec![1.into(), SqlValue::Null]))
            .is_ok());
    }
}
