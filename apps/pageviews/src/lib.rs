//! The page-views topology: views enriched with each user's region from a profile table,
//! sessionized per user, and counted per region in one-minute windows with final results.

use std::time::Duration;

use eddy::prelude::*;
use serde::{Deserialize, Serialize};

/// A page view, as JSON on the views topic (keyed by user).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageView {
    /// The page.
    pub page: String,
    /// When it was viewed, in milliseconds since the epoch (the record's event time).
    pub at: i64,
}

/// A user's profile, as JSON on the profiles topic (keyed by user; a tombstone deletes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The user's region.
    pub region: String,
}

/// Where the app reads and writes.
#[derive(Debug, Clone)]
pub struct Topics {
    /// Page views, keyed by user.
    pub views: String,
    /// User profiles, keyed by user.
    pub profiles: String,
    /// Sessions per user: windowed key (user, first view, last view) → views in the session.
    pub sessions: String,
    /// Views per region and minute, once the minute is over: windowed key → count.
    pub regions: String,
}

/// Region of a user without a profile.
pub const UNKNOWN_REGION: &str = "unknown";

/// Inactivity that ends a session.
pub const SESSION_GAP: Duration = Duration::from_secs(30 * 60);

/// How late a view may come and still count.
pub const GRACE: Duration = Duration::from_secs(10);

/// Builds the topology.
///
/// # Errors
/// A topology error (none for this fixed graph).
pub fn topology(topics: &Topics) -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    let profiles = builder.table(
        &topics.profiles,
        StringSerde,
        JsonSerde::<Profile>::new(),
        "profiles",
    );
    let views = builder
        .stream_with_timestamps(
            &topics.views,
            StringSerde,
            JsonSerde::<PageView>::new(),
            |_: &String, view: &PageView, _| view.at,
        )
        .named("views");

    views
        .group_by_key(StringSerde, JsonSerde::<PageView>::new())
        .windowed_by_sessions(SessionWindows::with_gap(SESSION_GAP).grace(GRACE))
        .emit(Emit::OnWindowClose)
        .count("sessions")
        .to_stream()
        .to(
            &topics.sessions,
            WindowedSerde::new(StringSerde),
            Nullable(I64Serde),
        );

    views
        .left_join(&profiles, |_: &PageView, profile: Option<&Profile>| {
            profile.map_or_else(|| UNKNOWN_REGION.to_owned(), |p| p.region.clone())
        })
        .select_key(|_: &String, region: &String| region.clone())
        .group_by_key(StringSerde, StringSerde)
        .windowed_by(TimeWindows::of(Duration::from_secs(60)).grace(GRACE))
        .emit(Emit::OnWindowClose)
        .count("views-per-region")
        .to_stream()
        .to(
            &topics.regions,
            WindowedSerde::new(StringSerde),
            Nullable(I64Serde),
        );
    builder.build()
}
