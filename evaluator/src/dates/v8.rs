//! V8's date string parser (`new Date(string)`, `Date.parse`), rule for rule.
//!
//! Reflag's SDKs compare dates with `new Date(value)`, so a date operator agrees with them only
//! if it reads every string exactly as V8 does, including what no standard requires: V8 first
//! reads as much of the ECMAScript date-time format (`YYYY-MM-DDTHH:mm:ss.sssZ`) as it can and
//! hands whatever is left to its "legacy" parser, which accepts `toString()`/`toUTCString()`
//! output, `May 1, 2024`, `2024/05/01`, `5/1/24`, AM/PM, US zone names and `GMT+0200`, ignores
//! words before the first number and parenthesized comments, fills a missing year with 2001,
//! and lets days 1..=31 roll over into the next month (`2024-02-30` is March 1st).
//!
//! The structure mirrors V8's `dateparser-inl.h` (tokenizer, ES5 reader, legacy loop, and the
//! day/time/zone composers) so that each rule can be checked against it; the vectors in
//! `tests/vectors/js-dates.json` are generated from Node and checked by the tests. Strings
//! without a zone are local time in JavaScript; the servers run on UTC, so they are read as UTC.
//! Parsing never panics and is linear in the input.

/// V8's `kNone` for unset composer slots.
const NONE: i64 = i32::MAX as i64;
/// Digits of a numeral beyond this many are skipped (V8's `kMaxSignificantDigits`).
const MAX_SIGNIFICANT_DIGITS: usize = 9;
/// `Smi::kMaxValue` on 64-bit builds without pointer compression (Node's default).
const SMI_MAX: u64 = i32::MAX as u64;
/// `MakeDay` answers NaN outside these years.
const MAX_YEAR: i64 = 1_000_000;
/// ECMAScript TimeClip bound.
const MAX_TIME_MS: i64 = 8_640_000_000_000_000;
const MS_PER_DAY: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    /// A word that is none of the others.
    Invalid,
    MonthName,
    TimeZoneName,
    TimeSeparator,
    AmPm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// Makes the whole string invalid (only the ES5 reader produces it).
    Invalid,
    Unknown,
    WhiteSpace,
    End,
    Number {
        value: i64,
        len: usize,
    },
    Symbol(char),
    Word {
        kind: Keyword,
        value: i64,
        len: usize,
    },
}

impl Token {
    fn is_number(self) -> bool {
        matches!(self, Token::Number { .. })
    }
    fn is_fixed_length_number(self, n: usize) -> bool {
        matches!(self, Token::Number { len, .. } if len == n)
    }
    fn number(self) -> i64 {
        match self {
            Token::Number { value, .. } => value,
            _ => 0,
        }
    }
    fn is_symbol(self, c: char) -> bool {
        self == Token::Symbol(c)
    }
    fn is_sign(self) -> bool {
        matches!(self, Token::Symbol('+' | '-'))
    }
    fn is_keyword(self, k: Keyword) -> bool {
        matches!(self, Token::Word { kind, .. } if kind == k)
    }
    /// `Z` alone (not `UT`, `UTC` or `GMT`).
    fn is_keyword_z(self) -> bool {
        matches!(self, Token::Word { kind: Keyword::TimeZoneName, value: 0, len: 1 })
    }
}

/// ECMAScript WhiteSpace: TAB, VT, FF, SP, NBSP, ZWNBSP and Unicode `Zs`.
fn is_white_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}' | '\u{b}' | '\u{c}' | ' ' | '\u{a0}' | '\u{feff}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

fn is_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

/// The first three letters of a keyword (lower case, `\0`-padded), its kind and value.
const KEYWORDS: [([u32; 3], Keyword, i64); 27] = {
    const fn k(s: &[u8]) -> [u32; 3] {
        let mut out = [0; 3];
        let mut i = 0;
        while i < s.len() {
            out[i] = s[i] as u32;
            i += 1;
        }
        out
    }
    use Keyword::*;
    [
        (k(b"jan"), MonthName, 1),
        (k(b"feb"), MonthName, 2),
        (k(b"mar"), MonthName, 3),
        (k(b"apr"), MonthName, 4),
        (k(b"may"), MonthName, 5),
        (k(b"jun"), MonthName, 6),
        (k(b"jul"), MonthName, 7),
        (k(b"aug"), MonthName, 8),
        (k(b"sep"), MonthName, 9),
        (k(b"oct"), MonthName, 10),
        (k(b"nov"), MonthName, 11),
        (k(b"dec"), MonthName, 12),
        (k(b"am"), AmPm, 0),
        (k(b"pm"), AmPm, 12),
        (k(b"ut"), TimeZoneName, 0),
        (k(b"utc"), TimeZoneName, 0),
        (k(b"z"), TimeZoneName, 0),
        (k(b"gmt"), TimeZoneName, 0),
        (k(b"cdt"), TimeZoneName, -5),
        (k(b"cst"), TimeZoneName, -6),
        (k(b"edt"), TimeZoneName, -4),
        (k(b"est"), TimeZoneName, -5),
        (k(b"mdt"), TimeZoneName, -6),
        (k(b"mst"), TimeZoneName, -7),
        (k(b"pdt"), TimeZoneName, -7),
        (k(b"pst"), TimeZoneName, -8),
        (k(b"t"), TimeSeparator, 0),
    ]
};

/// `KeywordTable::Lookup`: a word longer than its keyword matches only for month names
/// (`September`, but also `Mayday`).
fn lookup(prefix: [u32; 3], len: usize) -> (Keyword, i64) {
    KEYWORDS
        .iter()
        .find(|(p, kind, _)| *p == prefix && (len <= 3 || *kind == Keyword::MonthName))
        .map_or((Keyword::Invalid, 0), |(_, kind, value)| (*kind, *value))
}

/// `DateStringTokenizer` over `InputReader`, with one token of lookahead.
struct Tokenizer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    next: Token,
}

impl<'a> Tokenizer<'a> {
    fn new(s: &'a str) -> Self {
        let mut t = Self { chars: s.chars().peekable(), next: Token::End };
        t.next = t.scan();
        t
    }

    /// The current character; V8 reads a NUL as the end of the string.
    fn ch(&mut self) -> Option<char> {
        self.chars.peek().copied().filter(|c| *c != '\0')
    }

    fn scan(&mut self) -> Token {
        let Some(c) = self.ch() else { return Token::End };
        if c.is_ascii_digit() {
            // Leading zeros count in the length but not in the value; digits past the ninth
            // significant one are skipped, as V8 does.
            let (mut value, mut len, mut significant) = (0_i64, 0_usize, 0_usize);
            while let Some(d) = self.ch().filter(char::is_ascii_digit) {
                let digit = i64::from(d as u8 - b'0');
                if significant > 0 || digit > 0 {
                    if significant < MAX_SIGNIFICANT_DIGITS {
                        value = value * 10 + digit;
                    }
                    significant += 1;
                }
                len += 1;
                self.chars.next();
            }
            return Token::Number { value, len };
        }
        if matches!(c, ':' | '-' | '+' | '.' | ')') {
            self.chars.next();
            return Token::Symbol(c);
        }
        if c >= 'A' && !is_white_space(c) {
            let mut prefix = [0_u32; 3];
            let mut len = 0;
            while let Some(w) = self.ch().filter(|w| *w >= 'A' && !is_white_space(*w)) {
                if let Some(slot) = prefix.get_mut(len) {
                    *slot = w as u32 | 0x20;
                }
                len += 1;
                self.chars.next();
            }
            let (kind, value) = lookup(prefix, len);
            return Token::Word { kind, value, len };
        }
        self.chars.next();
        if is_white_space(c) || is_line_terminator(c) {
            return Token::WhiteSpace;
        }
        if c == '(' {
            let mut balance = 1_u32;
            while balance > 0 {
                match self.ch() {
                    None => break,
                    Some(')') => balance -= 1,
                    Some('(') => balance += 1,
                    Some(_) => {}
                }
                self.chars.next();
            }
        }
        Token::Unknown
    }

    fn next(&mut self) -> Token {
        let t = self.next;
        self.next = self.scan();
        t
    }

    fn peek(&self) -> Token {
        self.next
    }

    fn skip_symbol(&mut self, c: char) -> bool {
        if self.next.is_symbol(c) {
            self.next();
            true
        } else {
            false
        }
    }
}

fn between(x: i64, lo: i64, hi: i64) -> bool {
    (lo..=hi).contains(&x)
}

fn is_month(x: i64) -> bool {
    between(x, 1, 12)
}
fn is_day(x: i64) -> bool {
    between(x, 1, 31)
}
fn is_hour(x: i64) -> bool {
    between(x, 0, 23)
}
fn is_minute(x: i64) -> bool {
    between(x, 0, 59)
}
fn is_second(x: i64) -> bool {
    between(x, 0, 59)
}
fn is_millisecond(x: i64) -> bool {
    between(x, 0, 999)
}

#[derive(Default)]
struct Day {
    comp: [i64; 3],
    index: usize,
    named_month: Option<i64>,
    iso: bool,
}

impl Day {
    fn add(&mut self, n: i64) -> bool {
        match self.comp.get_mut(self.index) {
            Some(slot) => {
                *slot = n;
                self.index += 1;
                true
            }
            None => false,
        }
    }

    /// `(year, month 1..=12, day 1..=31)`; missing parts default to 1 (so the year to 2001).
    fn write(&mut self) -> Option<(i64, i64, i64)> {
        if self.index < 1 {
            return None;
        }
        for slot in self.comp.iter_mut().skip(self.index) {
            *slot = 1;
        }
        let [a, b, c] = self.comp;
        let (mut year, month, day) = match self.named_month {
            // YMD when ISO or when the first number cannot be a day, else MDY.
            None if self.iso || !is_day(a) => (a, b, c),
            None => (c, a, b),
            // YMD/MYD/YDM, else DMY/MDY/DYM.
            Some(m) if !is_day(a) => (a, m, b),
            Some(m) => (b, m, a),
        };
        if !self.iso {
            if between(year, 0, 49) {
                year += 2000;
            } else if between(year, 50, 99) {
                year += 1900;
            }
        }
        (is_month(month) && is_day(day)).then_some((year, month, day))
    }
}

struct Time {
    comp: [i64; 4],
    index: usize,
    hour_offset: Option<i64>,
}

impl Time {
    fn new() -> Self {
        Self { comp: [0; 4], index: 0, hour_offset: None }
    }
    fn is_empty(&self) -> bool {
        self.index == 0
    }
    fn is_expecting(&self, n: i64) -> bool {
        (self.index == 1 && is_minute(n)) || (self.index == 2 && is_second(n)) || (self.index == 3 && is_millisecond(n))
    }
    fn add(&mut self, n: i64) -> bool {
        match self.comp.get_mut(self.index) {
            Some(slot) => {
                *slot = n;
                self.index += 1;
                true
            }
            None => false,
        }
    }
    fn add_final(&mut self, n: i64) -> bool {
        if !self.add(n) {
            return false;
        }
        self.index = self.comp.len();
        true
    }

    /// Milliseconds into the day, or `None` when a part is out of range.
    fn write(&self) -> Option<i64> {
        let [mut hour, minute, second, ms] = self.comp;
        if let Some(offset) = self.hour_offset {
            if !between(hour, 0, 12) {
                return None;
            }
            hour = hour % 12 + offset;
        }
        let valid = is_hour(hour) && is_minute(minute) && is_second(second) && is_millisecond(ms);
        if !valid && (hour, minute, second, ms) != (24, 0, 0, 0) {
            return None;
        }
        Some(((hour * 60 + minute) * 60 + second) * 1000 + ms)
    }
}

struct Zone {
    sign: i64,
    hour: i64,
    minute: i64,
}

impl Zone {
    fn new() -> Self {
        Self { sign: NONE, hour: NONE, minute: NONE }
    }
    fn set(&mut self, offset_hours: i64) {
        self.sign = if offset_hours < 0 { -1 } else { 1 };
        self.hour = offset_hours.abs();
        self.minute = 0;
    }
    fn set_sign(&mut self, sign: i64) {
        self.sign = if sign < 0 { -1 } else { 1 };
    }
    fn is_expecting(&self, n: i64) -> bool {
        self.hour != NONE && self.minute == NONE && is_minute(n)
    }
    fn is_utc(&self) -> bool {
        self.hour == 0 && self.minute == 0
    }
    fn is_empty(&self) -> bool {
        self.hour == NONE
    }

    /// Seconds east of UTC; `Some(None)` for local time; `None` when out of range. V8 adds the
    /// parts as 32-bit unsigned integers, so huge hours wrap around before the range check.
    fn write(&self) -> Option<Option<i64>> {
        if self.sign == NONE {
            return Some(None);
        }
        let part = |v: i64| if v == NONE { 0 } else { v as u32 };
        let total = part(self.hour).wrapping_mul(3600).wrapping_add(part(self.minute).wrapping_mul(60));
        if u64::from(total) > SMI_MAX {
            return None;
        }
        let total = i64::from(total);
        Some(Some(if self.sign < 0 { -total } else { total }))
    }
}

/// `ReadMilliseconds`: the first three significant digits of a fraction as milliseconds.
fn read_milliseconds(t: Token) -> i64 {
    let Token::Number { value, len } = t else { return 0 };
    match len {
        1 => value * 100,
        2 => value * 10,
        3 => value,
        _ => value / 10_i64.pow(len.min(MAX_SIGNIFICANT_DIGITS) as u32 - 3),
    }
}

/// `ParseES5DateTime`: reads the date-time string format as far as it goes and returns the first
/// token it did not use (`End` when the string was entirely ES5, `Invalid` to reject it).
fn parse_es5(s: &mut Tokenizer<'_>, day: &mut Day, time: &mut Time, tz: &mut Zone) -> Token {
    if s.peek().is_sign() {
        let sign_token = s.next();
        if !s.peek().is_fixed_length_number(6) {
            return sign_token;
        }
        let year = s.next().number();
        if sign_token.is_symbol('-') && year == 0 {
            return sign_token;
        }
        day.add(if sign_token.is_symbol('-') { -year } else { year });
    } else if s.peek().is_fixed_length_number(4) {
        day.add(s.next().number());
    } else {
        return s.next();
    }
    if s.skip_symbol('-') {
        if !s.peek().is_fixed_length_number(2) || !is_month(s.peek().number()) {
            return s.next();
        }
        day.add(s.next().number());
        if s.skip_symbol('-') {
            if !s.peek().is_fixed_length_number(2) || !is_day(s.peek().number()) {
                return s.next();
            }
            day.add(s.next().number());
        }
    }
    if !s.peek().is_keyword(Keyword::TimeSeparator) {
        if s.peek() != Token::End {
            return s.next();
        }
    } else {
        s.next();
        if !s.peek().is_fixed_length_number(2) || !between(s.peek().number(), 0, 24) {
            return Token::Invalid;
        }
        // 24:00[:00[.000]] is the end of the day; no other time may start with 24.
        let hour_is_24 = s.peek().number() == 24;
        time.add(s.next().number());
        if !s.skip_symbol(':') {
            return Token::Invalid;
        }
        if !s.peek().is_fixed_length_number(2) || !is_minute(s.peek().number()) || (hour_is_24 && s.peek().number() > 0)
        {
            return Token::Invalid;
        }
        time.add(s.next().number());
        if s.skip_symbol(':') {
            if !s.peek().is_fixed_length_number(2)
                || !is_second(s.peek().number())
                || (hour_is_24 && s.peek().number() > 0)
            {
                return Token::Invalid;
            }
            time.add(s.next().number());
            if s.skip_symbol('.') {
                if !s.peek().is_number() || (hour_is_24 && s.peek().number() > 0) {
                    return Token::Invalid;
                }
                time.add(read_milliseconds(s.next()));
            }
        }
        if s.peek().is_keyword_z() {
            s.next();
            tz.set(0);
        } else if s.peek().is_sign() {
            tz.set_sign(if s.next().is_symbol('+') { 1 } else { -1 });
            if s.peek().is_fixed_length_number(4) {
                // The hhmm extension.
                let hourmin = s.next().number();
                let (hour, min) = (hourmin / 100, hourmin % 100);
                if !is_hour(hour) || !is_minute(min) {
                    return Token::Invalid;
                }
                tz.hour = hour;
                tz.minute = min;
            } else {
                if !s.peek().is_fixed_length_number(2) || !is_hour(s.peek().number()) {
                    return Token::Invalid;
                }
                tz.hour = s.next().number();
                if !s.skip_symbol(':') {
                    return Token::Invalid;
                }
                if !s.peek().is_fixed_length_number(2) || !is_minute(s.peek().number()) {
                    return Token::Invalid;
                }
                tz.minute = s.next().number();
            }
        }
        if s.peek() != Token::End {
            return Token::Invalid;
        }
    }
    // Date-only forms without an offset are UTC; date-time forms are local time.
    if tz.is_empty() && time.is_empty() {
        tz.set(0);
    }
    day.iso = true;
    Token::End
}

/// `DateParser::Parse` followed by `MakeDay`/`MakeTime`/`MakeDate` and `TimeClip`: epoch
/// milliseconds, or `None` where JavaScript gives `NaN`.
pub fn parse(input: &str) -> Option<f64> {
    let mut s = Tokenizer::new(input);
    let (mut day, mut time, mut tz) = (Day::default(), Time::new(), Zone::new());
    let mut token = parse_es5(&mut s, &mut day, &mut time, &mut tz);
    if token == Token::Invalid {
        return None;
    }
    let mut has_read_number = day.index > 0;
    while token != Token::End {
        match token {
            Token::Number { value: n, .. } => {
                has_read_number = true;
                if s.skip_symbol(':') {
                    if s.skip_symbol(':') {
                        // `n::` is hours and zero minutes.
                        if !time.is_empty() {
                            return None;
                        }
                        time.add(n);
                        time.add(0);
                    } else {
                        if !time.add(n) {
                            return None;
                        }
                        if s.peek().is_symbol('.') {
                            s.next();
                        }
                    }
                } else if s.skip_symbol('.') && time.is_expecting(n) {
                    time.add(n);
                    if !s.peek().is_number() {
                        return None;
                    }
                    let ms = read_milliseconds(s.next());
                    time.add_final(ms);
                } else if tz.is_expecting(n) {
                    tz.minute = n;
                } else if time.is_expecting(n) {
                    time.add_final(n);
                    // The time must end at the end, a space, `Z` or a sign.
                    let p = s.peek();
                    if !(p == Token::End || p == Token::WhiteSpace || p.is_keyword_z() || p.is_sign()) {
                        return None;
                    }
                } else {
                    if !day.add(n) {
                        return None;
                    }
                    s.skip_symbol('-');
                }
            }
            Token::Word { kind, value, .. } => match kind {
                Keyword::AmPm if !time.is_empty() => time.hour_offset = Some(value),
                Keyword::MonthName => {
                    day.named_month = Some(value);
                    s.skip_symbol('-');
                }
                Keyword::TimeZoneName if has_read_number => tz.set(value),
                // Words before the first number are ignored unless a number follows at once.
                _ if has_read_number || s.peek().is_number() => return None,
                _ => {}
            },
            t if t.is_sign() && (tz.is_utc() || !time.is_empty()) => {
                // A UTC offset, only after a zone name or a time: `GMT+2`, `+0200`, `+02:`.
                tz.set_sign(if t.is_symbol('+') { 1 } else { -1 });
                let (mut n, mut len) = (0, 0);
                if let Token::Number { value, len: l } = s.peek() {
                    s.next();
                    (n, len) = (value, l);
                }
                has_read_number = true;
                if s.peek().is_symbol(':') {
                    tz.hour = n;
                    tz.minute = NONE;
                } else if len == 1 || len == 2 {
                    tz.hour = n;
                    tz.minute = 0;
                } else if len == 3 || len == 4 {
                    tz.hour = n / 100;
                    tz.minute = n % 100;
                } else {
                    return None;
                }
            }
            t if (t.is_sign() || t.is_symbol(')')) && has_read_number => return None,
            _ => {}
        }
        token = s.next();
    }
    let (year, month, day_of_month) = day.write()?;
    let ms_of_day = time.write()?;
    let offset_s = tz.write()?;
    if !between(year, -MAX_YEAR, MAX_YEAR) {
        return None;
    }
    let days = super::days_from_civil(year, month, 1) + day_of_month - 1;
    let t = days * MS_PER_DAY + ms_of_day - offset_s.unwrap_or(0) * 1000;
    between(t, -MAX_TIME_MS, MAX_TIME_MS).then_some(t as f64)
}
