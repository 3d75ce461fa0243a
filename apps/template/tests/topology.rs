//! The topology under the in-memory test driver: no broker needed.

use eddy::serde::StringSerde;
use eddy::test_driver::TopologyTestDriver;

#[test]
fn each_event_emits_its_keys_new_count_and_blank_events_are_dropped() {
    let topology = eddy_app_template::topology("events", "counts").unwrap();
    let mut driver = TopologyTestDriver::new(topology).unwrap();
    let events = [
        ("alice", "login"),
        ("bob", "login"),
        ("alice", " "),
        ("alice", "view"),
    ];
    for (i, (key, event)) in events.iter().enumerate() {
        driver
            .pipe_input(
                "events",
                &StringSerde,
                &StringSerde,
                &(*key).to_owned(),
                &(*event).to_owned(),
                i64::try_from(i).unwrap(),
            )
            .unwrap();
    }
    let out: Vec<(String, String)> = driver
        .read_output("counts", &StringSerde, &StringSerde)
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    let expected = [("alice", "1"), ("bob", "1"), ("alice", "2")];
    assert_eq!(
        out,
        expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    );
}
