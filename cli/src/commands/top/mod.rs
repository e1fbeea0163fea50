//! `baton top`: the module's counters, refreshed every `--interval`, with
//! grants, releases and expirations per second, per node of a Cluster.
//!
//! - [`source`]: which nodes to read, and reading them.
//! - [`frame`]: readings into rows with rates and a total.
//! - [`render`]: a frame as a table or as JSON.
//! - [`screen`]: the terminal (redrawn in place, `q` quits) or plain output.

mod frame;
mod render;
mod screen;
mod source;

use tokio::time::{interval, Instant, MissedTickBehavior};

use crate::args::{Conn, TopArgs};
use crate::connect::connect_with_counters;
use crate::duration::show;
use crate::exit::{Failure, FAILURE, OK};
use crate::signals::Signals;
use crate::url::redact;
use frame::Rater;
use screen::Screen;
use source::Source;

/// Runs the view until `q`, a signal or `--count` frames.
pub(crate) async fn run(conn: &Conn, args: &TopArgs) -> Result<u8, Failure> {
    let mut signals = Signals::install()
        .map_err(|e| Failure::new(FAILURE, format!("cannot catch signals: {e}")))?;
    let client = connect_with_counters(conn, "baton top").await?;
    let mut source = Source::new(conn, client).map_err(Failure::usage)?;
    let mut screen = Screen::open(args.json);
    let title = format!(
        "baton top  {}  every {}{}",
        redact(&conn.url),
        show(args.interval),
        if screen.interactive() {
            "  q quits"
        } else {
            ""
        }
    );
    let mut rater = Rater::default();
    let mut tick = interval(args.interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut frames = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let readings = source.read(args.interval).await;
                let trouble = source.trouble().map(str::to_string);
                let frame = rater.frame(readings, Instant::now(), trouble);
                if args.json {
                    screen.draw(&[render::json(&frame).to_string()]);
                } else {
                    screen.draw(&render::text(&frame, &title));
                }
                frames += 1;
                if args.count == Some(frames) {
                    break;
                }
            }
            () = screen.quit_key() => break,
            _ = signals.recv() => break,
        }
    }
    Ok(OK)
}
