//! Date parsing and arithmetic with JavaScript `Date` semantics, on a UTC clock.
//!
//! Accepts the ECMAScript date-time string format (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`, optionally
//! `THH:mm[:ss[.fff…]]` with `Z` or `±HH:mm`, expanded years `±YYYYYY`; a space may stand for
//! `T`) and the `MM/DD/YYYY` form. Forms without an offset are local time in JavaScript; the
//! servers run on UTC, so they are read as UTC. Everything else is invalid (`None`).

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

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Option<i64> {
        let end = self.i.checked_add(n)?;
        let chunk = self.b.get(self.i..end)?;
        let mut v: i64 = 0;
        for c in chunk {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        self.i = end;
        Some(v)
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn done(&self) -> bool {
        self.i == self.b.len()
    }
}

/// Epoch milliseconds of a date string, or `None` when JavaScript would give `NaN`.
pub fn parse_date(s: &str) -> Option<f64> {
    parse_iso(s).or_else(|| parse_us(s))
}

fn parse_iso(s: &str) -> Option<f64> {
    let mut c = Cursor { b: s.as_bytes(), i: 0 };
    let year = match c.peek()? {
        b'+' | b'-' => {
            let neg = c.peek() == Some(b'-');
            c.i += 1;
            let y = c.digits(6)?;
            if neg && y == 0 {
                return None;
            }
            if neg {
                -y
            } else {
                y
            }
        }
        _ => c.digits(4)?,
    };
    let (mut month, mut day) = (1, 1);
    if c.eat(b'-') {
        month = c.digits(2)?;
        if c.eat(b'-') {
            day = c.digits(2)?;
        }
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut ms_of_day: i64 = 0;
    let mut offset_min: i64 = 0;
    if !c.done() {
        if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
            return None;
        }
        let h = c.digits(2)?;
        if !c.eat(b':') {
            return None;
        }
        let m = c.digits(2)?;
        let mut sec = 0;
        let mut ms = 0;
        if c.eat(b':') {
            sec = c.digits(2)?;
            if c.eat(b'.') {
                let start = c.i;
                while c.peek().is_some_and(|d| d.is_ascii_digit()) {
                    c.i += 1;
                }
                let frac = c.b.get(start..c.i)?;
                if frac.is_empty() {
                    return None;
                }
                for (k, d) in frac.iter().take(3).enumerate() {
                    ms += i64::from(d - b'0') * [100, 10, 1][k];
                }
            }
        }
        if h > 24 || m > 59 || sec > 59 || (h == 24 && (m, sec, ms) != (0, 0, 0)) {
            return None;
        }
        ms_of_day = ((h * 60 + m) * 60 + sec) * 1000 + ms;
        match c.peek() {
            None => {}
            Some(b'Z') | Some(b'z') => c.i += 1,
            Some(sign @ (b'+' | b'-')) => {
                c.i += 1;
                let oh = c.digits(2)?;
                let _ = c.eat(b':');
                let om = c.digits(2)?;
                if oh > 23 || om > 59 {
                    return None;
                }
                offset_min = (oh * 60 + om) * if sign == b'+' { 1 } else { -1 };
            }
            Some(_) => return None,
        }
        if !c.done() {
            return None;
        }
    }
    let days = days_from_civil(year, month, day);
    clip(days as f64 * MS_PER_DAY + ms_of_day as f64 - (offset_min * 60_000) as f64)
}

/// `MM/DD/YYYY` (V8's fallback parser), read as UTC midnight.
fn parse_us(s: &str) -> Option<f64> {
    let mut parts = s.split('/');
    let (m, d, y) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || m.is_empty() || m.len() > 2 || d.is_empty() || d.len() > 2 || y.len() != 4 {
        return None;
    }
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(m) && all_digits(d) && all_digits(y)) {
        return None;
    }
    let (month, day, year): (i64, i64, i64) = (m.parse().ok()?, d.parse().ok()?, y.parse().ok()?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    clip(days_from_civil(year, month, day) as f64 * MS_PER_DAY)
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
    fn iso_forms() {
        assert_eq!(parse_date("1970-01-01"), Some(0.0));
        assert_eq!(parse_date("1970-01-01T00:00:01Z"), Some(1000.0));
        assert_eq!(parse_date("1970-01-01T00:00:00.5Z"), Some(500.0));
        assert_eq!(parse_date("1970-01-01T01:00:00+01:00"), Some(0.0));
        assert_eq!(parse_date("2024-01-10T00:00:00.000Z"), Some(1_704_844_800_000.0));
        assert_eq!(parse_date("2024"), parse_date("2024-01-01"));
        assert_eq!(parse_date("+002024-01-01"), parse_date("2024-01-01"));
        assert_eq!(parse_date("01/10/2024"), parse_date("2024-01-10"));
        for bad in [
            "",
            "invalid-date",
            "2024-13-01",
            "2024-02-30",
            "2024-01-10T25:00",
            "2024-1-1",
            "-000000-01-01",
            "2024-01-10Tx",
            "1/2/3",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(parse_date("2023-02-29"), None);
        assert!(parse_date("2024-02-29").is_some());
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
}
