//! The word-count topology under the in-memory test driver.

use eddy::serde::{StringSerde, UnitSerde};
use eddy::test_driver::TopologyTestDriver;

#[test]
fn each_occurrence_emits_the_words_new_count() {
    let mut driver =
        TopologyTestDriver::new(wordcount::topology("lines", "counts").unwrap()).unwrap();
    for (i, line) in ["The cat", "the  DOG\tthe", "Ünïcode\u{2003}ünïcode"]
        .iter()
        .enumerate()
    {
        driver
            .pipe_input(
                "lines",
                &UnitSerde,
                &StringSerde,
                &(),
                &(*line).to_owned(),
                i as i64,
            )
            .unwrap();
    }
    let out: Vec<(String, String)> = driver
        .read_output("counts", &StringSerde, &StringSerde)
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    let expected = [
        ("the", "1"),
        ("cat", "1"),
        ("the", "2"),
        ("dog", "1"),
        ("the", "3"),
        ("ünïcode", "1"),
        ("ünïcode", "2"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(out, expected);
}
