//! Timestamps in JSON as chrono writes them (RFC 3339 in UTC with a `Z`, and as many fractional digits
//! as the value needs: none, 3, 6 or 9), but written digit by digit into a buffer rather than through
//! `core::fmt`. A page of sessions carries four timestamps per session, and formatting them was a third
//! of the time spent serialising the page.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::Serializer;

/// `#[serde(serialize_with = "timestamps::write")]`
pub fn write<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buffer = [0u8; 30];
    match rfc3339(at, &mut buffer) {
        Some(text) => serializer.serialize_str(text),
        None => serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
    }
}

/// `#[serde(serialize_with = "timestamps::write_optional")]`
pub fn write_optional<S: Serializer>(at: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => write(at, serializer),
        None => serializer.serialize_none(),
    }
}

/// The text of `at` in `buffer`, or `None` for what chrono writes differently (years outside
/// 0000-9999, leap seconds), which goes through chrono itself.
fn rfc3339<'a>(at: &DateTime<Utc>, buffer: &'a mut [u8; 30]) -> Option<&'a str> {
    let year = u32::try_from(at.year()).ok().filter(|year| *year <= 9999)?;
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    buffer[..20].copy_from_slice(b"0000-00-00T00:00:00.");
    digits(&mut buffer[0..4], year);
    digits(&mut buffer[5..7], at.month());
    digits(&mut buffer[8..10], at.day());
    digits(&mut buffer[11..13], at.hour());
    digits(&mut buffer[14..16], at.minute());
    digits(&mut buffer[17..19], at.second());
    let end = match nanos {
        0 => 19,
        _ if nanos.is_multiple_of(1_000_000) => fraction(buffer, nanos / 1_000_000, 3),
        _ if nanos.is_multiple_of(1_000) => fraction(buffer, nanos / 1_000, 6),
        _ => fraction(buffer, nanos, 9),
    };
    buffer[end] = b'Z';
    std::str::from_utf8(&buffer[..=end]).ok()
}

/// Writes `count` fractional digits after the `.` at 19, returning where they end.
fn fraction(buffer: &mut [u8; 30], value: u32, count: usize) -> usize {
    digits(&mut buffer[20..20 + count], value);
    20 + count
}

/// `value` in decimal, filling `out` with leading zeros.
fn digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    #[derive(serde::Serialize)]
    struct Ours(#[serde(serialize_with = "write")] DateTime<Utc>);

    fn chrono_and_ours(at: DateTime<Utc>) -> (String, String) {
        (serde_json::to_string(&at).unwrap(), serde_json::to_string(&Ours(at)).unwrap())
    }

    #[test]
    fn every_fraction_width_and_the_edges_read_as_chrono_writes_them() {
        let at = |y, mo, d, h, mi, s, nanos| {
            Utc.from_utc_datetime(
                &NaiveDate::from_ymd_opt(y, mo, d).unwrap().and_hms_nano_opt(h, mi, s, nanos).unwrap(),
            )
        };
        let cases = [
            at(2026, 12, 6, 17, 29, 13, 0),
            at(2026, 12, 6, 17, 29, 13, 387_000_000),
            at(2026, 12, 6, 17, 29, 13, 387_238_000),
            at(2026, 12, 6, 17, 29, 13, 387_238_878),
            at(2026, 1, 2, 3, 4, 5, 1_000),
            at(2026, 1, 2, 3, 4, 5, 1),
            at(0, 1, 1, 0, 0, 0, 0),
            at(9999, 12, 31, 23, 59, 59, 999_999_999),
            at(10_000, 1, 1, 0, 0, 0, 0),
            at(-1, 1, 1, 0, 0, 0, 0),
            at(2016, 12, 31, 23, 59, 59, 1_500_000_000),
        ];
        for case in cases {
            let (chrono, ours) = chrono_and_ours(case);
            assert_eq!(ours, chrono, "{case:?}");
        }
    }

    #[test]
    fn timestamps_across_the_years_read_as_chrono_writes_them() {
        let mut seconds: i64 = -62_000_000_000;
        while seconds < 250_000_000_000 {
            let nanos = (seconds.unsigned_abs() % 1_000_000_000) as u32;
            for nanos in [nanos, nanos / 1_000 * 1_000, nanos / 1_000_000 * 1_000_000] {
                let at = Utc.timestamp_opt(seconds, nanos).unwrap();
                let (chrono, ours) = chrono_and_ours(at);
                assert_eq!(ours, chrono, "{at:?}");
            }
            seconds += 777_777_777;
        }
    }

    #[test]
    fn an_absent_timestamp_is_null() {
        #[derive(serde::Serialize)]
        struct Maybe(#[serde(serialize_with = "write_optional")] Option<DateTime<Utc>>);
        assert_eq!(serde_json::to_string(&Maybe(None)).unwrap(), "null");
        let at = Utc.timestamp_opt(1_700_000_000, 5_000).unwrap();
        assert_eq!(serde_json::to_string(&Maybe(Some(at))).unwrap(), serde_json::to_string(&at).unwrap());
    }
}
