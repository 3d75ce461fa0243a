//! Two processes with one instance id (a copied state directory): each one's start fences the
//! other's transactional id. Instead of fencing each other forever, they stop with an error
//! that says what is wrong.

use std::time::Duration;

use eddy_integration_tests::{eventually, generate_lines, WordcountRun};

#[test]
fn two_processes_with_one_instance_id_stop_with_a_clear_error() -> anyhow::Result<()> {
    let run = WordcountRun::new("duplicate-id", 2)?;
    run.produce_lines(&generate_lines(9, 2_000, 50))?;
    let same = [("EDDY__APPLICATION__INSTANCE_ID", "copied")];
    let mut apps = [run.start("a", &same)?, run.start("b", &same)?];
    // Input keeps both busy, so each one's transactions meet the other's fencing.
    let mut stopped = None;
    eventually(
        "one of two processes with one instance id stops",
        Duration::from_secs(240),
        || {
            run.produce_lines(&generate_lines(10, 50, 50))?;
            for app in &mut apps {
                if let Some(status) = app.exited()? {
                    stopped = Some((app.name().to_owned(), status, app.log_text()));
                }
            }
            Ok(stopped.is_some())
        },
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}: both still run after mutual fencing:\n--- a:\n{}\n--- b:\n{}",
            apps[0].log_tail(15),
            apps[1].log_tail(15)
        )
    })?;
    let (name, status, log) = stopped.unwrap_or_default();
    assert!(!status.success(), "{name} exited with {status}");
    assert!(
        log.contains("another process runs with instance id `copied`"),
        "{name}'s log:\n{log}"
    );
    Ok(())
}
