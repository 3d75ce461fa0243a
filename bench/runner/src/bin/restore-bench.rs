//! Measures state restore and savepoints for one large wordcount store against the local
//! broker (`make bench`'s `--restore-mb` measurement alone, see `eddy_bench::restore`).
//!
//! `cargo run --release -p eddy-bench --bin restore-bench -- [records] [--s3]` (default
//! 9,500,000 ≈ 1 GB; uses `EDDY_BOOTSTRAP_SERVERS`, or starts the local broker). The snapshot
//! store is a local directory, or with `--s3` a prefix on the local S3 server
//! (`EDDY_S3_ENDPOINT`, or `compose/local/s3.sh start`).

use eddy_bench::restore;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let s3 = args.iter().any(|a| a == "--s3");
    let records: u64 = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(9_500_000);
    let measured = restore::run(records * restore::RECORD_BYTES, s3, &mut std::io::stdout())?;
    println!("{}", restore::markdown(Some(&measured)));
    Ok(())
}
