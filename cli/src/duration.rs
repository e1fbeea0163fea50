//! Durations on the command line: `500ms`, `30s`, `5m`, `1h`, combined
//! (`1m30s`), with decimals (`1.5s`), or a bare number of seconds (`30`).
//!
//! [`parse`] reads the form; [`ttl`], [`wait`], [`grace`] and [`interval`]
//! add each flag's range and are the `value_parser`s of those flags, so
//! clap's error names the flag and shows what went wrong and the accepted
//! forms.

use std::time::Duration;

/// The accepted forms, for error messages and `--help`.
pub const FORMS: &str = "accepted forms: 500ms, 30s, 5m, 1h, 1m30s, 1.5s, or a bare number of \
                         seconds (30); the smallest step is 1ms";

/// The largest ttl or wait the server takes: 2^31 - 1 ms (about 24.8 days).
pub const MAX: Duration = baton_client::options::MAX_DURATION;

/// Units, longest suffix first so `ms` is not read as `m`.
const UNITS: [(&str, u64); 4] = [("ms", 1), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)];

/// Parses a duration of whole milliseconds.
///
/// # Errors
///
/// A message saying what is wrong, followed by [`FORMS`].
pub fn parse(text: &str) -> Result<Duration, String> {
    read(text.trim()).map_err(|why| format!("{why}; {FORMS}"))
}

fn read(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return number(text, 1_000).map(Duration::from_millis);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("'{text}' does not start with a number"));
        }
        let (value, tail) = rest.split_at(digits);
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        if unit.is_empty() {
            return Err(format!("missing unit after '{value}' in '{text}'"));
        }
        let Some(&(_, per)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(format!("unknown unit '{unit}' in '{text}'"));
        };
        total = total
            .checked_add(number(value, per)?)
            .ok_or_else(|| format!("'{text}' is too long"))?;
        rest = tail;
    }
    Ok(Duration::from_millis(total))
}

/// `value` (digits, at most one `.`) times `per` milliseconds, exactly.
fn number(value: &str, per: u64) -> Result<u64, String> {
    let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
    if whole.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(format!("'{value}' is not a number"));
    }
    let too_long = || format!("'{value}' is too long");
    let mut ms = if whole.is_empty() {
        0
    } else {
        whole
            .parse::<u64>()
            .map_err(|_| too_long())?
            .checked_mul(per)
            .ok_or_else(too_long)?
    };
    let mut scale = per;
    for digit in frac.bytes() {
        let d = u64::from(digit - b'0');
        if d != 0 && !scale.is_multiple_of(10) {
            return Err(format!("'{value}' is finer than 1ms"));
        }
        scale /= 10;
        ms = ms.checked_add(d * scale).ok_or_else(too_long)?;
    }
    Ok(ms)
}

/// `within(d, lo, hi)`: `d`, or an error naming the range.
fn within(text: &str, lo: Duration, hi: Duration) -> Result<Duration, String> {
    let d = parse(text)?;
    if d < lo || d > hi {
        return Err(format!(
            "'{text}' is out of range: from {} to {}",
            show(lo),
            show(hi)
        ));
    }
    Ok(d)
}

/// `--ttl`: 1ms to [`MAX`].
pub fn ttl(text: &str) -> Result<Duration, String> {
    within(text, Duration::from_millis(1), MAX)
}

/// `--wait`: 0 to [`MAX`].
pub fn wait(text: &str) -> Result<Duration, String> {
    within(text, Duration::ZERO, MAX)
}

/// `--kill-after`: any duration (0 kills at once).
pub fn grace(text: &str) -> Result<Duration, String> {
    parse(text)
}

/// `--interval` of `baton top`: 100ms to 1h.
pub fn interval(text: &str) -> Result<Duration, String> {
    within(text, Duration::from_millis(100), Duration::from_secs(3_600))
}

/// A duration in the form [`parse`] reads back: `1h2m3.5s`, `250ms`, `0s`.
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let (h, m, s, frac) = (
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1_000 % 60,
        ms % 1_000,
    );
    let mut out = String::new();
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if s > 0 || frac > 0 {
        out += &format!("{s}");
        if frac > 0 {
            out += format!(".{frac:03}").trim_end_matches('0');
        }
        out += "s";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn reads_each_unit_and_bare_seconds() {
        assert_eq!(parse("500ms"), Ok(ms(500)));
        assert_eq!(parse("30s"), Ok(ms(30_000)));
        assert_eq!(parse("5m"), Ok(ms(300_000)));
        assert_eq!(parse("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse("30"), Ok(ms(30_000)));
        assert_eq!(parse("0"), Ok(ms(0)));
        assert_eq!(parse(" 2s "), Ok(ms(2_000)));
    }

    #[test]
    fn reads_combinations_and_decimals() {
        assert_eq!(parse("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse("1h1m1s1ms"), Ok(ms(3_661_001)));
        assert_eq!(parse("1.5s"), Ok(ms(1_500)));
        assert_eq!(parse("0.25"), Ok(ms(250)));
        assert_eq!(parse(".5m"), Ok(ms(30_000)));
        assert_eq!(parse("1.001s"), Ok(ms(1_001)));
        assert_eq!(
            parse("1.5ms").unwrap_err().split(';').next(),
            Some("'1.5' is finer than 1ms")
        );
    }

    #[test]
    fn refuses_bad_forms_and_shows_the_accepted_ones() {
        for (text, why) in [
            ("", "empty duration"),
            ("5x", "unknown unit 'x' in '5x'"),
            ("10 s", "unknown unit ' s' in '10 s'"),
            ("s", "'s' does not start with a number"),
            ("-1s", "'-1s' does not start with a number"),
            ("1.2.3s", "'1.2.3' is not a number"),
            ("1m30", "missing unit after '30' in '1m30'"),
            (
                "99999999999999999999s",
                "'99999999999999999999' is too long",
            ),
            ("0.0001s", "'0.0001' is finer than 1ms"),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err, format!("{why}; {FORMS}"), "{text:?}");
        }
    }

    #[test]
    fn each_flag_checks_its_range() {
        assert_eq!(ttl("1ms"), Ok(ms(1)));
        assert_eq!(
            ttl("0s").unwrap_err(),
            "'0s' is out of range: from 1ms to 596h31m23.647s"
        );
        assert_eq!(ttl("2147483647ms"), Ok(MAX));
        assert_eq!(
            ttl("2147483648ms").unwrap_err(),
            "'2147483648ms' is out of range: from 1ms to 596h31m23.647s"
        );
        assert_eq!(wait("0"), Ok(Duration::ZERO));
        assert_eq!(grace("0"), Ok(Duration::ZERO));
        assert_eq!(interval("250ms"), Ok(ms(250)));
        assert!(interval("10ms").is_err());
    }

    #[test]
    fn shows_durations_in_a_form_it_reads_back() {
        for (d, text) in [
            (ms(0), "0s"),
            (ms(250), "250ms"),
            (ms(1_500), "1.5s"),
            (ms(30_000), "30s"),
            (ms(90_000), "1m30s"),
            (ms(3_600_000), "1h"),
            (ms(3_661_001), "1h1m1.001s"),
        ] {
            assert_eq!(show(d), text);
            assert_eq!(parse(text), Ok(d));
        }
    }
}
