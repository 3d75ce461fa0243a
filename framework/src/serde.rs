//! Serdes: how keys, values and state are turned into bytes and back.

use std::marker::PhantomData;

/// A value could not be turned into bytes or back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SerdeError {
    message: String,
    transient: bool,
}

impl SerdeError {
    /// An error with the given description: the bytes or the value are at fault, so the
    /// same record fails the same way again (the app's error handlers decide).
    pub fn new(message: impl Into<String>) -> Self {
        SerdeError {
            message: message.into(),
            transient: false,
        }
    }

    /// A failure that may pass by itself, not the record's fault (a schema registry that
    /// cannot be reached, say): the runtime starts over from the last commit and tries the
    /// record again, instead of handing it to the error handlers.
    pub fn transient(message: impl Into<String>) -> Self {
        SerdeError {
            message: message.into(),
            transient: true,
        }
    }

    /// True for a [`transient`](Self::transient) failure.
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// The description.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Converts values of `T` to Kafka bytes and back. `None` bytes stand for a null key or value.
pub trait Serde<T>: Send + Sync + 'static {
    /// Encodes a value; `None` writes a null.
    ///
    /// # Errors
    /// Fails when the value cannot be encoded.
    fn serialize(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError>;

    /// Decodes bytes (`None` for a null).
    ///
    /// # Errors
    /// Fails when the bytes are not a valid encoding; the runtime then applies the app's
    /// deserialization error handler.
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError>;

    /// A stable name of the format, recorded with stores so incompatible changes are caught.
    fn format(&self) -> String {
        std::any::type_name::<Self>().to_owned()
    }

    /// Whether this serde reads data that a serde of format `written` (as a savepoint
    /// recorded it, from an earlier version of the app) wrote: `Some(Ok(()))` when it does
    /// though the formats differ (a schema that evolved compatibly), `Some(Err(why))` when
    /// it cannot, `None` when the serde has no rule beyond equal formats (the default).
    fn reads_format(&self, written: &str) -> Option<Result<(), String>> {
        let _ = written;
        None
    }
}

/// Raw bytes, unchanged. A null decodes to an error; wrap in [`Nullable`] to accept nulls.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerde;

impl Serde<Vec<u8>> for BytesSerde {
    fn serialize(&self, value: &Vec<u8>) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(value.clone()))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Vec<u8>, SerdeError> {
        bytes
            .map(<[u8]>::to_vec)
            .ok_or_else(|| SerdeError::new("null where bytes were expected"))
    }
    fn format(&self) -> String {
        "bytes".to_owned()
    }
}

/// UTF-8 text.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerde;

impl Serde<String> for StringSerde {
    fn serialize(&self, value: &String) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(value.as_bytes().to_vec()))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<String, SerdeError> {
        let bytes = bytes.ok_or_else(|| SerdeError::new("null where UTF-8 text was expected"))?;
        String::from_utf8(bytes.to_vec()).map_err(|e| {
            SerdeError::new(format!(
                "invalid UTF-8 at byte {}",
                e.utf8_error().valid_up_to()
            ))
        })
    }
    fn format(&self) -> String {
        "utf8".to_owned()
    }
}

/// A 64-bit signed integer, 8 bytes big-endian (the encoding of Kafka's `LongSerde`).
#[derive(Debug, Clone, Copy, Default)]
pub struct I64Serde;

impl Serde<i64> for I64Serde {
    fn serialize(&self, value: &i64) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(value.to_be_bytes().to_vec()))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<i64, SerdeError> {
        let bytes = bytes.ok_or_else(|| SerdeError::new("null where an i64 was expected"))?;
        let array: [u8; 8] = bytes
            .try_into()
            .map_err(|_| SerdeError::new(format!("an i64 needs 8 bytes, got {}", bytes.len())))?;
        Ok(i64::from_be_bytes(array))
    }
    fn format(&self) -> String {
        "i64-be".to_owned()
    }
}

/// A 32-bit signed integer, 4 bytes big-endian (the encoding of Kafka's `IntegerSerde`).
#[derive(Debug, Clone, Copy, Default)]
pub struct I32Serde;

impl Serde<i32> for I32Serde {
    fn serialize(&self, value: &i32) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(value.to_be_bytes().to_vec()))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<i32, SerdeError> {
        let bytes = bytes.ok_or_else(|| SerdeError::new("null where an i32 was expected"))?;
        let array: [u8; 4] = bytes
            .try_into()
            .map_err(|_| SerdeError::new(format!("an i32 needs 4 bytes, got {}", bytes.len())))?;
        Ok(i32::from_be_bytes(array))
    }
    fn format(&self) -> String {
        "i32-be".to_owned()
    }
}

/// Ignores the bytes entirely (for keys or values an app does not read); writes null.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitSerde;

impl Serde<()> for UnitSerde {
    fn serialize(&self, _value: &()) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(None)
    }
    fn deserialize(&self, _bytes: Option<&[u8]>) -> Result<(), SerdeError> {
        Ok(())
    }
    fn format(&self) -> String {
        "unit".to_owned()
    }
}

/// JSON through serde.
#[derive(Debug)]
pub struct JsonSerde<T>(PhantomData<fn() -> T>);

impl<T> Default for JsonSerde<T> {
    fn default() -> Self {
        JsonSerde(PhantomData)
    }
}

impl<T> Clone for JsonSerde<T> {
    fn clone(&self) -> Self {
        JsonSerde(PhantomData)
    }
}

impl<T> JsonSerde<T> {
    /// A JSON serde for `T`.
    pub fn new() -> Self {
        JsonSerde(PhantomData)
    }
}

impl<T> Serde<T> for JsonSerde<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn serialize(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        serde_json::to_vec(value)
            .map(Some)
            .map_err(|e| SerdeError::new(format!("JSON encoding failed: {e}")))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        let bytes = bytes.ok_or_else(|| SerdeError::new("null where JSON was expected"))?;
        serde_json::from_slice(bytes).map_err(|e| SerdeError::new(format!("invalid JSON: {e}")))
    }
    fn format(&self) -> String {
        format!("json:{}", std::any::type_name::<T>())
    }
}

/// Wraps a serde so that null bytes decode to `None` and `None` encodes to null.
#[derive(Debug, Clone, Default)]
pub struct Nullable<S>(pub S);

impl<T: 'static, S: Serde<T>> Serde<Option<T>> for Nullable<S> {
    fn serialize(&self, value: &Option<T>) -> Result<Option<Vec<u8>>, SerdeError> {
        match value {
            Some(v) => self.0.serialize(v),
            None => Ok(None),
        }
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Option<T>, SerdeError> {
        match bytes {
            Some(b) => self.0.deserialize(Some(b)).map(Some),
            None => Ok(None),
        }
    }
    fn format(&self) -> String {
        format!("nullable:{}", self.0.format())
    }
    fn reads_format(&self, written: &str) -> Option<Result<(), String>> {
        self.0.reads_format(written.strip_prefix("nullable:")?)
    }
}

/// A shared serde is a serde: lets one serde serve a store, a sink and a source.
impl<T: 'static> Serde<T> for std::sync::Arc<dyn Serde<T>> {
    fn serialize(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        self.as_ref().serialize(value)
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        self.as_ref().deserialize(bytes)
    }
    fn format(&self) -> String {
        self.as_ref().format()
    }
    fn reads_format(&self, written: &str) -> Option<Result<(), String>> {
        self.as_ref().reads_format(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_use_kafkas_big_endian_layout() {
        assert_eq!(
            I64Serde.serialize(&1).unwrap(),
            Some(vec![0, 0, 0, 0, 0, 0, 0, 1])
        );
        assert_eq!(
            I64Serde
                .deserialize(Some(&[0, 0, 0, 0, 0, 0, 1, 0]))
                .unwrap(),
            256
        );
        assert!(I64Serde.deserialize(Some(&[1, 2])).is_err());
        assert_eq!(I32Serde.deserialize(Some(&[0, 0, 1, 0])).unwrap(), 256);
    }

    #[test]
    fn invalid_utf8_and_null_are_errors_that_say_why() {
        let err = StringSerde.deserialize(Some(&[b'a', 0xff])).unwrap_err();
        assert!(err.message().contains("invalid UTF-8 at byte 1"), "{err}");
        assert!(StringSerde.deserialize(None).is_err());
        assert_eq!(Nullable(StringSerde).deserialize(None).unwrap(), None);
    }

    #[test]
    fn json_round_trips() {
        let serde = JsonSerde::<Vec<u32>>::new();
        let bytes = serde.serialize(&vec![1, 2, 3]).unwrap();
        assert_eq!(serde.deserialize(bytes.as_deref()).unwrap(), vec![1, 2, 3]);
        assert!(serde.deserialize(Some(b"{")).is_err());
    }
}
