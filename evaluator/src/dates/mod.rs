//! Date parsing and arithmetic with JavaScript `Date` semantics, on a UTC clock.
//!
//! [`parse_date`] reads a string as V8's `new Date(value)` does (module [`v8`]): the ECMAScript
//! date-time format and everything V8's legacy parser accepts. Forms without an offset are local
//! time in JavaScript; the servers run on UTC, so they are read as UTC.

mod v8;

const MS_PER_DAY: f64 = 86_400_000.0;
/// ECMAScript TimeClip bound.
const MAX_TIME: f64 = 8.64e15;

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month 1..=12, day 1..=31) of a day number.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Epoch milliseconds of a date string as JavaScript's `new Date(value)` reads it in V8 (see
/// [`v8`]), or `None` where JavaScript gives `NaN`.
pub fn parse_date(s: &str) -> Option<f64> {
    v8::parse(s)
}

fn clip(t: f64) -> Option<f64> {
    (t.is_finite() && t.abs() <= MAX_TIME).then_some(t)
}

/// `d = new Date(now); d.setDate(d.getDate() - days)` on a UTC clock; `None` for NaN.
pub fn days_ago(now_ms: f64, days: f64) -> Option<f64> {
    if !now_ms.is_finite() || !days.is_finite() {
        return None;
    }
    let day_num = (now_ms / MS_PER_DAY).floor();
    let time_in_day = now_ms - day_num * MS_PER_DAY;
    let (y, m, d) = civil_from_days(day_num as i64);
    // MakeDay applies ToIntegerOrInfinity (truncation) to the new day of month.
    let new_day = ((d as f64) - days).trunc();
    if new_day.abs() > 1e9 {
        return None;
    }
    let base = days_from_civil(y, m, 1) as f64;
    clip((base + new_day - 1.0) * MS_PER_DAY + time_in_day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_forms() {
        // Expected values from Node 20 (`TZ=UTC node -e 'new Date(s).getTime()'`).
        let cases: [(&str, Option<f64>); 20] = [
            ("1970-01-01", Some(0.0)),
            ("1970-01-01T00:00:00.5Z", Some(500.0)),
            ("1970-01-01T01:00:00+01:00", Some(0.0)),
            ("2024", Some(1_704_067_200_000.0)),
            ("2024-02-30", Some(1_709_251_200_000.0)),
            ("2023-02-29", Some(1_677_628_800_000.0)),
            ("2024-1-1", Some(1_704_067_200_000.0)),
            ("-000000-01-01", Some(978_307_200_000.0)),
            ("1/2/3", Some(1_041_465_600_000.0)),
            ("May 1, 2024", Some(1_714_521_600_000.0)),
            ("Wed, 01 May 2024 00:00:00 GMT", Some(1_714_521_600_000.0)),
            ("Wed May 01 2024 02:00:00 GMT+0200 (Central European Summer Time)", Some(1_714_521_600_000.0)),
            ("2024/05/01", Some(1_714_521_600_000.0)),
            ("May 1 2024 10:00 PM EST", Some(1_714_618_800_000.0)),
            ("c-1", Some(978_307_200_000.0)),
            ("0", Some(946_684_800_000.0)),
            ("1714521600000", None),
            ("invalid-date", None),
            ("2024-01-10T25:00", None),
            ("2024-01-10Tx", None),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_date(input), expected, "{input:?}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for z in [-800_000, -1, 0, 1, 19_732, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn set_date_semantics() {
        let now = parse_date("2024-01-10T00:00:00.000Z").unwrap_or(f64::NAN);
        assert_eq!(days_ago(now, 5.0), parse_date("2024-01-05"));
        assert_eq!(days_ago(now, 10.0), parse_date("2023-12-31"));
        assert_eq!(days_ago(now, 1.5), parse_date("2024-01-08"));
        assert_eq!(days_ago(now, f64::NAN), None);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

        /// Years 0..=9999 as whole milliseconds.
        fn instant() -> impl Strategy<Value = i64> {
            -62_167_219_200_000_i64..253_402_300_800_000
        }

        fn parts(t: i64) -> (i64, i64, i64, i64, i64, i64, i64, i64) {
            let day = t.div_euclid(86_400_000);
            let ms = t.rem_euclid(86_400_000);
            let (y, m, d) = civil_from_days(day);
            (y, m, d, ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000, day)
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

            #[test]
            fn never_panics_and_clips(s in any::<String>()) {
                if let Some(t) = parse_date(&s) {
                    prop_assert!(t.fract() == 0.0 && t.abs() <= MAX_TIME, "{s:?} -> {t}");
                }
            }

            #[test]
            fn never_panics_on_date_like_soup(s in "[0-9A-Za-z :./,+()\\-]{0,40}") {
                if let Some(t) = parse_date(&s) {
                    prop_assert!(t.fract() == 0.0 && t.abs() <= MAX_TIME, "{s:?} -> {t}");
                }
            }

            #[test]
            fn iso_round_trip(t in instant()) {
                let (y, m, d, h, mi, s, ms, _) = parts(t);
                let iso = format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z");
                prop_assert_eq!(parse_date(&iso), Some(t as f64), "{}", iso);
            }

            #[test]
            fn to_utc_string_round_trip(t in instant()) {
                let t = t - t.rem_euclid(1000);
                let (y, m, d, h, mi, s, _, day) = parts(t);
                prop_assume!(y >= 100); // toUTCString pads to 4 digits, which the legacy reader maps
                let name = DAYS[day.rem_euclid(7) as usize];
                let text = format!("{name}, {d:02} {} {y:04} {h:02}:{mi:02}:{s:02} GMT", MONTHS[(m - 1) as usize]);
                prop_assert_eq!(parse_date(&text), Some(t as f64), "{}", text);
            }

            #[test]
            fn to_string_with_offset_round_trip(t in instant(), offset_min in -720_i64..=840) {
                let t = t - t.rem_euclid(1000);
                let local = t + offset_min * 60_000;
                let (y, m, d, h, mi, s, _, day) = parts(local);
                prop_assume!(y >= 100);
                let sign = if offset_min < 0 { '-' } else { '+' };
                let (oh, om) = (offset_min.abs() / 60, offset_min.abs() % 60);
                let text = format!(
                    "{} {} {d:02} {y:04} {h:02}:{mi:02}:{s:02} GMT{sign}{oh:02}{om:02} (Some Zone)",
                    DAYS[day.rem_euclid(7) as usize],
                    MONTHS[(m - 1) as usize]
                );
                prop_assert_eq!(parse_date(&text), Some(t as f64), "{}", text);
            }

            #[test]
            fn days_roll_over(y in 1000_i64..9999, m in 1_i64..=12, d in 1_i64..=31) {
                let iso = format!("{y:04}-{m:02}-{d:02}");
                prop_assert_eq!(parse_date(&iso), Some((days_from_civil(y, m, 1) + d - 1) as f64 * MS_PER_DAY));
                let slashed = format!("{y:04}/{m:02}/{d:02}");
                prop_assert_eq!(parse_date(&slashed), parse_date(&iso));
            }
        }
    }
}
