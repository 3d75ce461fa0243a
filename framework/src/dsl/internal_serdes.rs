//! Wire formats of the DSL's own records and store values: value lists, key pairs and
//! versioned values. Every field is its length (4 bytes, big-endian) and its bytes; a null
//! field is the length `u32::MAX` alone.

use std::sync::Arc;

use crate::serde::{Serde, SerdeError};

/// The length that marks a null field.
const NULL: u32 = u32::MAX;

/// Appends one field: its length and bytes, or the null length.
fn put_field(out: &mut Vec<u8>, bytes: Option<&[u8]>) -> Result<(), SerdeError> {
    let Some(bytes) = bytes else {
        out.extend_from_slice(&NULL.to_be_bytes());
        return Ok(());
    };
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|&len| len != NULL)
        .ok_or_else(|| SerdeError::new("a field of 4 GiB or more"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Takes one field off the front of `rest`; `what` names the encoding in errors.
fn take_field<'a>(rest: &mut &'a [u8], what: &str) -> Result<Option<&'a [u8]>, SerdeError> {
    let (len, tail) = rest
        .split_at_checked(4)
        .ok_or_else(|| SerdeError::new(format!("{what}: a field length is cut short")))?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    if len == NULL {
        *rest = tail;
        return Ok(None);
    }
    let (field, tail) = tail
        .split_at_checked(len as usize)
        .ok_or_else(|| SerdeError::new(format!("{what}: a field is cut short")))?;
    *rest = tail;
    Ok(Some(field))
}

/// Values buffered under one key and time: several records may share both. Each value is
/// one field.
pub(crate) struct ListSerde<V> {
    inner: Arc<dyn Serde<V>>,
}

impl<V> ListSerde<V> {
    pub(crate) fn new(inner: Arc<dyn Serde<V>>) -> Self {
        ListSerde { inner }
    }
}

impl<V: 'static> Serde<Vec<V>> for ListSerde<V> {
    fn serialize(&self, values: &Vec<V>) -> Result<Option<Vec<u8>>, SerdeError> {
        let mut out = Vec::new();
        for value in values {
            put_field(&mut out, self.inner.serialize(value)?.as_deref())?;
        }
        Ok(Some(out))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Vec<V>, SerdeError> {
        let mut rest = bytes.unwrap_or_default();
        let mut out = Vec::new();
        while !rest.is_empty() {
            let field = take_field(&mut rest, "a buffered value list")?;
            out.push(self.inner.deserialize(field)?);
        }
        Ok(out)
    }

    fn format(&self) -> String {
        format!("list:{}", self.inner.format())
    }
}

/// A pair as two fields. The encoding of the first alone ([`FieldSerde`]) is a prefix of
/// every pair's encoding, so a store keyed by pairs scans all pairs of one first value.
pub(crate) struct PairSerde<A, B> {
    first: Arc<dyn Serde<A>>,
    second: Arc<dyn Serde<B>>,
}

impl<A, B> PairSerde<A, B> {
    pub(crate) fn new(first: Arc<dyn Serde<A>>, second: Arc<dyn Serde<B>>) -> Self {
        PairSerde { first, second }
    }
}

impl<A: 'static, B: 'static> Serde<(A, B)> for PairSerde<A, B> {
    fn serialize(&self, (a, b): &(A, B)) -> Result<Option<Vec<u8>>, SerdeError> {
        let mut out = Vec::new();
        put_field(&mut out, self.first.serialize(a)?.as_deref())?;
        put_field(&mut out, self.second.serialize(b)?.as_deref())?;
        Ok(Some(out))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<(A, B), SerdeError> {
        let mut rest = bytes.ok_or_else(|| SerdeError::new("a pair may not be null"))?;
        let a = self.first.deserialize(take_field(&mut rest, "a pair")?)?;
        let b = self.second.deserialize(take_field(&mut rest, "a pair")?)?;
        if !rest.is_empty() {
            return Err(SerdeError::new("a pair has trailing bytes"));
        }
        Ok((a, b))
    }

    fn format(&self) -> String {
        format!("pair:{}:{}", self.first.format(), self.second.format())
    }
}

/// One value as one field: the prefix of a [`PairSerde`] encoding with that first value.
pub(crate) struct FieldSerde<A>(pub Arc<dyn Serde<A>>);

impl<A: 'static> Serde<A> for FieldSerde<A> {
    fn serialize(&self, value: &A) -> Result<Option<Vec<u8>>, SerdeError> {
        let mut out = Vec::new();
        put_field(&mut out, self.0.serialize(value)?.as_deref())?;
        Ok(Some(out))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<A, SerdeError> {
        let mut rest = bytes.ok_or_else(|| SerdeError::new("a field may not be null"))?;
        self.0.deserialize(take_field(&mut rest, "a field")?)
    }

    fn format(&self) -> String {
        format!("field:{}", self.0.format())
    }
}

/// A value with the version it belongs to (a counter per key that only grows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Versioned<T> {
    pub version: u64,
    pub value: T,
}

/// [`Versioned`] as the version (8 bytes, big-endian) and the value as one field.
pub(crate) struct VersionedSerde<T>(pub Arc<dyn Serde<T>>);

impl<T: 'static> Serde<Versioned<T>> for VersionedSerde<T> {
    fn serialize(&self, v: &Versioned<T>) -> Result<Option<Vec<u8>>, SerdeError> {
        let mut out = v.version.to_be_bytes().to_vec();
        put_field(&mut out, self.0.serialize(&v.value)?.as_deref())?;
        Ok(Some(out))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Versioned<T>, SerdeError> {
        let bytes = bytes.ok_or_else(|| SerdeError::new("a versioned value may not be null"))?;
        let (version, mut rest) = bytes
            .split_first_chunk::<8>()
            .ok_or_else(|| SerdeError::new("a versioned value: the version is cut short"))?;
        let value = self
            .0
            .deserialize(take_field(&mut rest, "a versioned value")?)?;
        if !rest.is_empty() {
            return Err(SerdeError::new("a versioned value has trailing bytes"));
        }
        Ok(Versioned {
            version: u64::from_be_bytes(*version),
            value,
        })
    }

    fn format(&self) -> String {
        format!("versioned:{}", self.0.format())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::{Nullable, StringSerde, UnitSerde};

    fn strings() -> Arc<dyn Serde<String>> {
        Arc::new(StringSerde)
    }

    #[test]
    fn lists_keep_null_values_apart_from_empty_ones() {
        let serde = ListSerde::new(Arc::new(Nullable(StringSerde)) as Arc<dyn Serde<_>>);
        let list = vec![Some(String::new()), None, Some("x".to_owned())];
        let bytes = serde.serialize(&list).unwrap();
        assert_eq!(serde.deserialize(bytes.as_deref()).unwrap(), list);
        let units = ListSerde::new(Arc::new(UnitSerde) as Arc<dyn Serde<()>>);
        let bytes = units.serialize(&vec![(), ()]).unwrap();
        assert_eq!(units.deserialize(bytes.as_deref()).unwrap().len(), 2);
    }

    #[test]
    fn a_first_field_is_the_prefix_of_its_pairs_and_of_no_other() {
        let pairs = PairSerde::new(strings(), strings());
        let prefix = FieldSerde(strings())
            .serialize(&"ab".to_owned())
            .unwrap()
            .unwrap();
        let own = pairs
            .serialize(&("ab".to_owned(), "c".to_owned()))
            .unwrap()
            .unwrap();
        let longer = pairs
            .serialize(&("abc".to_owned(), String::new()))
            .unwrap()
            .unwrap();
        assert!(own.starts_with(&prefix));
        assert!(!longer.starts_with(&prefix), "`abc` is not under `ab`");
        assert_eq!(
            pairs.deserialize(Some(&own)).unwrap(),
            ("ab".to_owned(), "c".to_owned())
        );
    }

    #[test]
    fn cut_or_padded_encodings_are_errors_not_panics() {
        let pairs = PairSerde::new(strings(), strings());
        let bytes = pairs
            .serialize(&("ab".to_owned(), "c".to_owned()))
            .unwrap()
            .unwrap();
        for cut in 0..bytes.len() {
            assert!(
                pairs.deserialize(Some(&bytes[..cut])).is_err(),
                "cut at {cut}"
            );
        }
        let mut padded = bytes;
        padded.push(0);
        assert!(pairs.deserialize(Some(&padded)).is_err());
        let versioned = VersionedSerde(Arc::new(Nullable(StringSerde)) as Arc<dyn Serde<_>>);
        assert!(versioned.deserialize(Some(&[0; 7])).is_err());
        let v = Versioned {
            version: 7,
            value: None,
        };
        let bytes = versioned.serialize(&v).unwrap();
        assert_eq!(versioned.deserialize(bytes.as_deref()).unwrap(), v);
    }
}
