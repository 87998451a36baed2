//! JavaScript number semantics: `String(number)`, `Number(string)` and `String(value)`.

use serde_json::Value;

/// `String(x)` for a JavaScript number (ECMAScript Number::toString).
pub fn number_to_string(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    if x == 0.0 {
        return "0".into();
    }
    let mut buf = ryu_js::Buffer::new();
    buf.format_finite(x).to_owned()
}

/// `String(n)` for a JSON number, keeping integers exact when they fit an i64/u64.
pub fn json_number_to_string(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= (1u64 << 53) {
            return i.to_string();
        }
    } else if let Some(u) = n.as_u64() {
        if u <= (1u64 << 53) {
            return u.to_string();
        }
    }
    number_to_string(n.as_f64().unwrap_or(f64::NAN))
}

/// The numeric value of a JSON number as a JavaScript double.
#[inline]
pub fn json_number_to_f64(n: &serde_json::Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\u{9}' | '\u{a}' | '\u{b}' | '\u{c}' | '\u{d}' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{feff}'
    )
}

/// `Number(s)` (ECMAScript StringToNumber): trims JS whitespace, `""` is 0, accepts
/// `0x`/`0o`/`0b` literals without sign, `[+-]Infinity` and decimal literals; anything else is NaN.
pub fn string_to_number(s: &str) -> f64 {
    let t = s.trim_matches(is_js_whitespace);
    if t.is_empty() {
        return 0.0;
    }
    let bytes = t.as_bytes();
    if bytes.len() > 2 && bytes[0] == b'0' {
        let radix = match bytes[1] {
            b'x' | b'X' => 16,
            b'o' | b'O' => 8,
            b'b' | b'B' => 2,
            _ => 0,
        };
        if radix != 0 {
            let digits = &t[2..];
            let mut acc: f64 = 0.0;
            for c in digits.chars() {
                match c.to_digit(radix) {
                    Some(d) => acc = acc * f64::from(radix) + f64::from(d),
                    None => return f64::NAN,
                }
            }
            return acc;
        }
    }
    let (sign, rest) = match bytes[0] {
        b'+' => (1.0, &t[1..]),
        b'-' => (-1.0, &t[1..]),
        _ => (1.0, t),
    };
    if rest == "Infinity" {
        return sign * f64::INFINITY;
    }
    if !is_decimal_literal(rest.as_bytes()) {
        return f64::NAN;
    }
    rest.parse::<f64>().map(|v| sign * v).unwrap_or(f64::NAN)
}

/// StrUnsignedDecimalLiteral: digits [. digits?] | . digits, then optional exponent.
fn is_decimal_literal(b: &[u8]) -> bool {
    let mut i = 0;
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - f;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == b.len()
}

/// `String(v)` for a JSON value as JavaScript would print it
/// (arrays join their elements with `,`, null/undefined elements print as empty).
pub fn value_to_js_string(v: &Value) -> String {
    let mut out = String::new();
    push_js_string(v, &mut out, 0);
    out
}

fn push_js_string(v: &Value, out: &mut String, depth: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&json_number_to_string(n)),
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            if depth > crate::error::MAX_DATA_DEPTH {
                return;
            }
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !item.is_null() {
                    push_js_string(item, out, depth + 1);
                }
            }
        }
        Value::Object(_) => out.push_str("[object Object]"),
    }
}

/// `Number(v)` for a JSON value (JavaScript ToNumber).
pub fn value_to_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => json_number_to_f64(n),
        Value::String(s) => string_to_number(s),
        Value::Array(items) => match items.len() {
            0 => 0.0,
            1 => string_to_number(&value_to_js_string(v)),
            _ => f64::NAN,
        },
        Value::Object(_) => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_string_like_js() {
        assert_eq!(number_to_string(10.0), "10");
        assert_eq!(number_to_string(1.5e-7), "1.5e-7");
        assert_eq!(number_to_string(1e21), "1e+21");
        assert_eq!(number_to_string(123456789012345680000.0), "123456789012345680000");
        assert_eq!(number_to_string(-0.0), "0");
        assert_eq!(number_to_string(0.1 + 0.2), "0.30000000000000004");
    }

    #[test]
    fn number_like_js() {
        assert_eq!(string_to_number(""), 0.0);
        assert_eq!(string_to_number(" 42 "), 42.0);
        assert_eq!(string_to_number("0x1A"), 26.0);
        assert_eq!(string_to_number("0b101"), 5.0);
        assert_eq!(string_to_number("-Infinity"), f64::NEG_INFINITY);
        assert_eq!(string_to_number(".5"), 0.5);
        assert_eq!(string_to_number("5."), 5.0);
        assert_eq!(string_to_number("1e3"), 1000.0);
        for bad in ["inf", "nan", "NaN", "1_000", "-0x10", "0x", "1e", "abc", "12px", "e5", "."] {
            assert!(string_to_number(bad).is_nan(), "{bad}");
        }
    }

    #[test]
    fn value_strings() {
        let v: Value = serde_json::json!([1, null, "a", [2, 3]]);
        assert_eq!(value_to_js_string(&v), "1,,a,2,3");
        assert_eq!(value_to_js_string(&serde_json::json!({"a": 1})), "[object Object]");
        assert_eq!(value_to_number(&serde_json::json!([" 7 "])), 7.0);
    }
}
