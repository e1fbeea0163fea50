//! `baton info KEY`: a lock's state (`LOCK.INFO`).

use crate::args::{Conn, InfoArgs};
use crate::connect::{connect, failure};
use crate::exit::{Failure, OK};
use crate::view;

/// Prints the lock's state.
pub(crate) async fn run(conn: &Conn, args: &InfoArgs) -> Result<u8, Failure> {
    let client = connect(conn).await?;
    let info = client.info(&args.key).await.map_err(|e| failure(conn, e))?;
    if args.json.json {
        println!("{}", view::info_json(&args.key, &info));
    } else {
        print!("{}", view::info_text(&args.key, &info));
    }
    Ok(OK)
}
