//! The values a sink writes into a column, converted to the column's own type when sent.

use std::error::Error;

use postgres::types::{to_sql_checked, IsNull, ToSql, Type};

/// One column's value in a row a sink writes.
///
/// Each converts to the column's type when the statement runs: integers to any integer column
/// they fit or to `double precision`, floats to `real` or `double precision`, text to any
/// text type, JSON to `json` or `jsonb`. A value that does not fit its column fails the
/// commit with an error naming both types.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// `boolean`.
    Bool(bool),
    /// `smallint`, `integer` or `bigint` (range-checked).
    Int(i64),
    /// `real` or `double precision`.
    Float(f64),
    /// `text`, `varchar`, `char` or `name`.
    Text(String),
    /// `bytea`.
    Bytes(Vec<u8>),
    /// `json` or `jsonb`.
    Json(serde_json::Value),
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Int(v)
    }
}

impl From<i32> for SqlValue {
    fn from(v: i32) -> Self {
        SqlValue::Int(i64::from(v))
    }
}

impl From<f64> for SqlValue {
    fn from(v: f64) -> Self {
        SqlValue::Float(v)
    }
}

impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Bool(v)
    }
}

impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_owned())
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

type BoxError = Box<dyn Error + Sync + Send>;

impl ToSql for SqlValue {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, BoxError> {
        match self {
            SqlValue::Null => Ok(IsNull::Yes),
            // The typed conversions check that the column's type is theirs.
            SqlValue::Bool(v) => v.to_sql_checked(ty, out),
            SqlValue::Int(v) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql_checked(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql_checked(ty, out),
                Type::FLOAT8 => (*v as f64).to_sql_checked(ty, out),
                _ => v.to_sql_checked(ty, out),
            },
            SqlValue::Float(v) => match *ty {
                Type::FLOAT4 => (*v as f32).to_sql_checked(ty, out),
                _ => v.to_sql_checked(ty, out),
            },
            SqlValue::Text(v) => v.to_sql_checked(ty, out),
            SqlValue::Bytes(v) => v.to_sql_checked(ty, out),
            SqlValue::Json(v) => v.to_sql_checked(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        // Each variant checks its column's type when it is written.
        let _ = ty;
        true
    }

    to_sql_checked!();
}
