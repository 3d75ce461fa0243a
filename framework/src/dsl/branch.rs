//! Splitting a stream by predicates into named branches.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use super::processors::Stateless;
use super::KStream;
use crate::processor::{Data, ProcessError, Processor, ProcessorContext};
use crate::record::Record;

/// A branch's predicate.
type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// A stream being split: add branches in order, then finish with
/// [`default_branch`](Self::default_branch) or [`no_default_branch`](Self::no_default_branch).
#[must_use = "a split adds nothing to the topology until default_branch or no_default_branch"]
pub struct BranchedKStream<K, V> {
    stream: KStream<K, V>,
    name: String,
    branches: Vec<(String, Predicate<K, V>)>,
}

impl<K, V> std::fmt::Debug for BranchedKStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BranchedKStream")
            .field("name", &self.name)
            .field(
                "branches",
                &self.branches.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<K: Data, V: Data> BranchedKStream<K, V> {
    pub(super) fn new(stream: KStream<K, V>, name: &str) -> Self {
        BranchedKStream {
            stream,
            name: name.to_owned(),
            branches: Vec::new(),
        }
    }

    /// Adds branch `name`: records no earlier branch took and for which `predicate` holds.
    pub fn branch(
        mut self,
        name: &str,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.branches.push((name.to_owned(), Arc::new(predicate)));
        self
    }

    /// Finishes the split with branch `name` taking every record no other branch took.
    pub fn default_branch(mut self, name: &str) -> Branches<K, V> {
        self.branches
            .push((name.to_owned(), Arc::new(|_: &K, _: &V| true)));
        self.finish()
    }

    /// Finishes the split; records no branch takes are dropped.
    pub fn no_default_branch(self) -> Branches<K, V> {
        self.finish()
    }

    fn finish(self) -> Branches<K, V> {
        let state = Rc::clone(&self.stream.state);
        let mut dsl = state.borrow_mut();
        let router = format!("{}-split", self.name);
        let children: Vec<(String, Predicate<K, V>)> = self
            .branches
            .iter()
            .map(|(branch, p)| (format!("{}-{branch}", self.name), Arc::clone(p)))
            .collect();
        let routes = Arc::new(children.clone());
        dsl.builder.add_processor(
            &router,
            move || Router {
                routes: Arc::clone(&routes),
            },
            &[&self.stream.node],
            &[],
        );
        let mut streams = BTreeMap::new();
        for ((branch, _), (node, _)) in self.branches.iter().zip(&children) {
            let pass = Arc::new(|r: Record<K, V>| vec![r]);
            dsl.builder.add_processor(
                node,
                move || Stateless {
                    f: Arc::clone(&pass) as super::processors::RecordFn<K, V, K, V>,
                },
                &[&router],
                &[],
            );
            streams.insert(
                branch.clone(),
                KStream::new(Rc::clone(&state), node.clone(), self.stream.key_changed),
            );
        }
        Branches { streams }
    }
}

/// Sends each record to the first route whose predicate holds.
struct Router<K, V> {
    routes: Arc<Vec<(String, Predicate<K, V>)>>,
}

impl<K: Data, V: Data> Processor for Router<K, V> {
    type KeyIn = K;
    type ValueIn = V;
    type KeyOut = K;
    type ValueOut = V;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V>,
        record: Record<K, V>,
    ) -> Result<(), ProcessError> {
        if let Some((child, _)) = self
            .routes
            .iter()
            .find(|(_, p)| p(&record.key, &record.value))
        {
            ctx.forward_to(child, record);
        }
        Ok(())
    }
}

/// The branches of a split, by name.
pub struct Branches<K, V> {
    streams: BTreeMap<String, KStream<K, V>>,
}

impl<K, V> std::fmt::Debug for Branches<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Branches")
            .field("names", &self.streams.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<K, V> Branches<K, V> {
    /// Branch `name`, when the split has one of that name.
    pub fn get(&self, name: &str) -> Option<&KStream<K, V>> {
        self.streams.get(name)
    }

    /// The branches' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.streams.keys().map(String::as_str)
    }
}

impl<K, V> std::ops::Index<&str> for Branches<K, V> {
    type Output = KStream<K, V>;

    /// Branch `name`.
    ///
    /// # Panics
    /// The split has no branch of that name (a mistake in the code building the topology).
    fn index(&self, name: &str) -> &KStream<K, V> {
        match self.streams.get(name) {
            Some(stream) => stream,
            None => panic!(
                "no branch `{name}`; the split has {:?}",
                self.streams.keys().collect::<Vec<_>>()
            ),
        }
    }
}
