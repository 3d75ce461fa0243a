//! `make demo`: wordcount on 3 instances under load, one killed, one added, exactly-once
//! verified. Uses the broker at `EDDY_BOOTSTRAP_SERVERS`, or starts a local one.

fn main() -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    eddy_integration_tests::demo::run(&mut out)?;
    Ok(())
}
