//! The processors of a foreign-key join (see [`super::foreign_key_join`]): the left side's
//! subscriptions, the right side's answers to subscriptions and to right changes, and the
//! results side that applies rows in version order.

use std::marker::PhantomData;
use std::sync::Arc;

use super::internal_serdes::{FieldSerde, Versioned};
use super::join::Joiner;
use super::table_join::update_row;
use crate::processor::{Data, ProcessError, Processor, ProcessorContext};
use crate::record::Record;
use crate::serde::{Serde, SerdeError};

/// The foreign key a left value names (`None`: none, the row joins nothing).
pub(super) type ForeignKey<VL, KO> = Arc<dyn Fn(&VL) -> Option<KO> + Send + Sync>;

/// What the results topic says about a key's joined row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RowChange<VJ> {
    /// The key subscribed with a new foreign key: results of older versions are stale.
    Pending,
    /// The joined row (`None`: no row).
    Row(Option<VJ>),
}

/// [`RowChange`] as a tag byte (0 pending, 1 no row, 2 a row, 3 a row whose encoding is
/// null) and the row's bytes.
pub(super) struct RowChangeSerde<VJ>(pub Arc<dyn Serde<VJ>>);

impl<VJ: 'static> Serde<RowChange<VJ>> for RowChangeSerde<VJ> {
    fn serialize(&self, change: &RowChange<VJ>) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(match change {
            RowChange::Pending => vec![0],
            RowChange::Row(None) => vec![1],
            RowChange::Row(Some(row)) => match self.0.serialize(row)? {
                Some(bytes) => [&[2][..], &bytes].concat(),
                None => vec![3],
            },
        }))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<RowChange<VJ>, SerdeError> {
        match bytes.and_then(<[u8]>::split_first) {
            Some((0, [])) => Ok(RowChange::Pending),
            Some((1, [])) => Ok(RowChange::Row(None)),
            Some((2, row)) => Ok(RowChange::Row(Some(self.0.deserialize(Some(row))?))),
            Some((3, [])) => Ok(RowChange::Row(Some(self.0.deserialize(None)?))),
            _ => Err(SerdeError::new(
                "a foreign-key join result is neither pending nor a row",
            )),
        }
    }

    fn format(&self) -> String {
        format!("fk-row:{}", self.0.format())
    }
}

/// A subscription record: the left key, its version and its value (`None`: unsubscribe).
pub(super) type Subscription<K, VL> = Versioned<(K, Option<VL>)>;

/// The left side: turns each left change into subscriptions and, where the right table
/// cannot matter, into results.
pub(super) struct LeftSide<K, VL, KO, VJ> {
    /// Key → the version of its latest change and the foreign key it subscribed with.
    pub state: String,
    pub foreign_key: ForeignKey<VL, KO>,
    pub joiner: Joiner<VL, (), VJ>,
    pub subscriptions: String,
    pub results: String,
    pub _types: PhantomData<fn(K)>,
}

impl<K: Data, VL: Data, KO: Data + PartialEq, VJ: Data> Processor for LeftSide<K, VL, KO, VJ> {
    type KeyIn = K;
    type ValueIn = Option<VL>;
    type KeyOut = ();
    type ValueOut = ();

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, (), ()>,
        record: Record<K, Option<VL>>,
    ) -> Result<(), ProcessError> {
        let mut state = ctx.key_value_store::<K, Versioned<Option<KO>>>(&self.state)?;
        let previous = state.get(&record.key)?;
        if previous.is_none() && record.value.is_none() {
            return Ok(()); // deleting a key never seen changes nothing
        }
        let version = previous.as_ref().map_or(1, |p| p.version + 1);
        let old_key = previous.and_then(|p| p.value);
        let new_key = record.value.as_ref().and_then(|v| (self.foreign_key)(v));
        state.put(
            &record.key,
            &Versioned {
                version,
                value: new_key.clone(),
            },
        )?;
        let (key, timestamp, headers) = (record.key, record.timestamp, record.headers);
        let to_results = |ctx: &mut ProcessorContext<'_, (), ()>, change| {
            let value = Versioned {
                version,
                value: change,
            };
            ctx.forward_side(
                &self.results,
                Record {
                    key: key.clone(),
                    value,
                    timestamp,
                    headers: headers.clone(),
                },
            );
        };
        let subscribe = |ctx: &mut ProcessorContext<'_, (), ()>, to: KO, value: Option<VL>| {
            let value: Subscription<K, VL> = Versioned {
                version,
                value: (key.clone(), value),
            };
            ctx.forward_side(
                &self.subscriptions,
                Record {
                    key: to,
                    value,
                    timestamp,
                    headers: headers.clone(),
                },
            );
        };
        if let Some(old) = old_key.filter(|old| Some(old) != new_key.as_ref()) {
            subscribe(ctx, old, None);
            if new_key.is_some() {
                // Committed with the new subscription, so it precedes the new result.
                to_results(ctx, RowChange::Pending);
            }
        }
        match (record.value, new_key) {
            (Some(value), Some(to)) => subscribe(ctx, to, Some(value)),
            (Some(value), None) => to_results(ctx, RowChange::Row((self.joiner)(&value, None))),
            (None, _) => to_results(ctx, RowChange::Row(None)),
        }
        Ok(())
    }
}

/// The right side's stores and output, shared by its two processors.
#[derive(Clone)]
pub(super) struct RightSide<K, VL, KO, VR, VJ> {
    /// (Foreign key, key) → the subscription's version and left value.
    pub subscriptions: String,
    /// The right table's store.
    pub right: String,
    pub results: String,
    pub joiner: Joiner<VL, VR, VJ>,
    pub _types: PhantomData<fn(K, KO)>,
}

impl<K: Data, VL: Data, KO: Data, VR: Data, VJ: Data> RightSide<K, VL, KO, VR, VJ> {
    fn send<KC: Data, VC: Data>(
        &self,
        ctx: &mut ProcessorContext<'_, KC, VC>,
        key: K,
        version: u64,
        row: Option<VJ>,
        timestamp: i64,
    ) {
        let value = Versioned {
            version,
            value: RowChange::Row(row),
        };
        ctx.forward_side(&self.results, Record::new(key, value, timestamp));
    }
}

/// Keeps subscriptions and answers each with the right row it finds.
pub(super) struct Subscribe<K, VL, KO, VR, VJ>(pub RightSide<K, VL, KO, VR, VJ>);

impl<K: Data, VL: Data, KO: Data, VR: Data, VJ: Data> Processor for Subscribe<K, VL, KO, VR, VJ> {
    type KeyIn = KO;
    type ValueIn = Subscription<K, VL>;
    type KeyOut = ();
    type ValueOut = ();

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, (), ()>,
        record: Record<KO, Subscription<K, VL>>,
    ) -> Result<(), ProcessError> {
        let side = &self.0;
        let Versioned {
            version,
            value: (key, left),
        } = record.value;
        let id = (record.key, key);
        let mut subscriptions =
            ctx.key_value_store::<(KO, K), Versioned<VL>>(&side.subscriptions)?;
        let Some(left) = left else {
            if subscriptions.get(&id)?.is_some_and(|s| s.version < version) {
                subscriptions.delete(&id)?;
            }
            return Ok(());
        };
        subscriptions.put(
            &id,
            &Versioned {
                version,
                value: left.clone(),
            },
        )?;
        let (foreign_key, key) = id;
        let right = ctx
            .key_value_store::<KO, VR>(&side.right)?
            .get(&foreign_key)?;
        let row = (side.joiner)(&left, right.as_ref());
        side.send(ctx, key, version, row, record.timestamp);
        Ok(())
    }
}

/// Re-joins every subscription of a right key when its row changes.
pub(super) struct RightChanges<K, VL, KO, VR, VJ> {
    pub side: RightSide<K, VL, KO, VR, VJ>,
    /// Encodes a foreign key as the prefix of its subscriptions' store keys.
    pub prefix: Arc<FieldSerde<KO>>,
}

impl<K: Data, VL: Data, KO: Data, VR: Data, VJ: Data> Processor
    for RightChanges<K, VL, KO, VR, VJ>
{
    type KeyIn = KO;
    type ValueIn = Option<VR>;
    type KeyOut = ();
    type ValueOut = ();

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, (), ()>,
        record: Record<KO, Option<VR>>,
    ) -> Result<(), ProcessError> {
        let side = &self.side;
        let subscribed = ctx
            .key_value_store::<(KO, K), Versioned<VL>>(&side.subscriptions)?
            .prefix_scan(&record.key, self.prefix.as_ref())?;
        for ((_, key), left) in subscribed {
            let row = (side.joiner)(&left.value, record.value.as_ref());
            side.send(ctx, key, left.version, row, record.timestamp);
        }
        Ok(())
    }
}

/// Applies results in version order to the result table and forwards its changes.
pub(super) struct Results<K, VJ> {
    pub store: String,
    /// Key → the latest version seen.
    pub versions: String,
    pub _types: PhantomData<fn(K, VJ)>,
}

impl<K: Data, VJ: Data> Processor for Results<K, VJ> {
    type KeyIn = K;
    type ValueIn = Versioned<RowChange<VJ>>;
    type KeyOut = K;
    type ValueOut = Option<VJ>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Option<VJ>>,
        record: Record<K, Versioned<RowChange<VJ>>>,
    ) -> Result<(), ProcessError> {
        let Versioned { version, value } = record.value;
        let mut versions = ctx.key_value_store::<K, Versioned<()>>(&self.versions)?;
        if versions
            .get(&record.key)?
            .is_some_and(|seen| seen.version > version)
        {
            return Ok(()); // a result of a subscription the key has left
        }
        versions.put(&record.key, &Versioned { version, value: () })?;
        let RowChange::Row(row) = value else {
            return Ok(());
        };
        if let Some(change) = update_row(ctx, &self.store, &record.key, row)? {
            ctx.forward(Record {
                key: record.key,
                value: change,
                timestamp: record.timestamp,
                headers: record.headers,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::StringSerde;

    #[test]
    fn row_changes_round_trip_and_refuse_unknown_tags() {
        let serde = RowChangeSerde(Arc::new(StringSerde) as Arc<dyn Serde<String>>);
        for change in [
            RowChange::Pending,
            RowChange::Row(None),
            RowChange::Row(Some(String::new())),
            RowChange::Row(Some("row".to_owned())),
        ] {
            let bytes = serde.serialize(&change).unwrap();
            assert_eq!(serde.deserialize(bytes.as_deref()).unwrap(), change);
        }
        for bad in [&[][..], &[4], &[0, 1], &[1, 0], &[3, 0]] {
            assert!(serde.deserialize(Some(bad)).is_err(), "{bad:?}");
        }
        assert!(serde.deserialize(None).is_err());
    }
}
