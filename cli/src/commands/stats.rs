//! `baton stats`: the module's node-wide counters (`LOCK.STATS`), summed
//! over the primaries of a Cluster.

use crate::args::{Conn, JsonArgs};
use crate::connect::{connect_with_counters, failure};
use crate::exit::{Failure, OK};
use crate::view;

/// Prints the counters.
pub(crate) async fn run(conn: &Conn, args: &JsonArgs) -> Result<u8, Failure> {
    let client = connect_with_counters(conn, "baton stats").await?;
    let stats = client.stats().await.map_err(|e| failure(conn, e))?;
    if args.json {
        println!("{}", view::stats_json(&stats));
    } else {
        print!("{}", view::stats_text(&stats));
    }
    Ok(OK)
}
