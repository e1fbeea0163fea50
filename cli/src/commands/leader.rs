//! `baton leader NAME`: who leads an election, its term and value.

use crate::args::{Conn, LeaderArgs};
use crate::connect::{connect, failure};
use crate::exit::{Failure, OK};
use crate::view;

/// Prints the leader, or that there is none.
pub(crate) async fn run(conn: &Conn, args: &LeaderArgs) -> Result<u8, Failure> {
    let client = connect(conn).await?;
    let leader = client
        .leader(&args.name)
        .await
        .map_err(|e| failure(conn, e))?;
    if args.json.json {
        println!("{}", view::leader_json(&args.name, leader.as_ref()));
    } else {
        print!("{}", view::leader_text(&args.name, leader.as_ref()));
    }
    Ok(OK)
}
