//! `baton release --force KEY`: removes whoever holds the lock
//! (`LOCK.FORCERELEASE`); the next waiter is granted it.

use crate::args::{Conn, ReleaseArgs};
use crate::connect::{connect, failure};
use crate::exit::{Failure, OK};

/// Force-releases the lock and says whether a holder was removed (exit 0
/// either way: afterwards the lock is not held by that holder).
pub(crate) async fn run(conn: &Conn, args: &ReleaseArgs) -> Result<u8, Failure> {
    debug_assert!(args.force, "clap requires --force");
    let client = connect(conn).await?;
    let removed = client
        .force_release(&args.key)
        .await
        .map_err(|e| failure(conn, e))?;
    if removed {
        println!("released {}: its holder was removed", args.key);
    } else {
        println!("{} was not held", args.key);
    }
    Ok(OK)
}
