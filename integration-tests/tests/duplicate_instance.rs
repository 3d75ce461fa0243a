//! Two processes with one instance id (a copied state directory): each one's start fences the
//! other's transactional id. Instead of fencing each other forever, they stop with an error
//! that says what is wrong.

use std::time::{Duration, Instant};

use eddy_integration_tests::{generate_lines, WordcountRun};

#[test]
fn two_processes_with_one_instance_id_stop_with_a_clear_error() -> anyhow::Result<()> {
    let run = WordcountRun::new("duplicate-id", 2)?;
    run.produce_lines(&generate_lines(9, 2_000, 50))?;
    let same = [("EDDY__APPLICATION__INSTANCE_ID", "copied")];
    let mut apps = [run.start("a", &same)?, run.start("b", &same)?];
    // Input keeps both busy, so each one's transactions meet the other's fencing.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut stopped = None;
    while stopped.is_none() {
        if Instant::now() > deadline {
            anyhow::bail!(
                "both still run after 240 s of mutual fencing:\n--- a:\n{}\n--- b:\n{}",
                apps[0].log_tail(15),
                apps[1].log_tail(15)
            );
        }
        run.produce_lines(&generate_lines(10, 50, 50))?;
        for app in &mut apps {
            if let Some(status) = app.exited()? {
                stopped = Some((app.name().to_owned(), status, app.log_text()));
            }
        }
        std::thread::park_timeout(Duration::from_millis(500)); // poll interval of a deadline wait
    }
    let (name, status, log) = stopped.unwrap_or_default();
    assert!(!status.success(), "{name} exited with {status}");
    assert!(
        log.contains("another process runs with instance id `copied`"),
        "{name}'s log:\n{log}"
    );
    Ok(())
}
