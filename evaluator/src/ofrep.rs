//! OpenFeature Remote Evaluation Protocol (OFREP) answers, written by the evaluator from what it
//! knows while evaluating (which rule matched, whether it holds a rollout, which variant), instead
//! of being rebuilt from a debug answer by the edge.
//!
//! Per flag (a Reflag-shape flag; a DevCycle project's variables are [`crate::devcycle::answer`]):
//! `{"key", "value": isEnabled, "reason", "variant", "metadata": {"flagStateVersion",
//! "targetingVersion"?, "configKey"?, "configPayload"?}}`. `reason` is DISABLED (no rules), STATIC
//! (only constant rules), DEFAULT (not enabled), SPLIT (the first matching rule holds a percentage
//! rollout, or DevCycle served from a split target) or TARGETING_MATCH. `variant` is the matched
//! config variant's key when enabled, else `on`/`off`; the matched variant (enabled or not) is
//! also `configKey` and its payload as JSON text `configPayload`. A flag that is off because it
//! reads `user.id` and the context has no targeting key is the failure
//! `{"key", "errorCode": "TARGETING_KEY_MISSING", "errorDetails"}`.
//!
//! The bytes are those `server/ofrep.py` produced with orjson from the debug answer (member order,
//! no spaces, `errorDetails` naming the key as Python's `repr` does).

use serde_json::Value;
use std::io::Write;

/// What the evaluator needs beyond the context to write an OFREP answer.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The environment's snapshot version (`metadata.flagStateVersion`).
    pub flag_state_version: u64,
    /// The OFREP context named its subject (`targetingKey` or `user.id`).
    pub has_targeting_key: bool,
    /// The clock for AFTER/BEFORE and DevCycle schedules, epoch milliseconds.
    pub now_ms: f64,
    /// The kind of SDK key asking: flags `sdkVisibility` hides from it are left out.
    pub kind: Option<crate::edge_devcycle::KeyKind>,
}

/// A config variant as OFREP shows it, serialized once per snapshot, in one allocation.
#[derive(Debug, Clone)]
pub struct VariantBytes {
    /// `"<key>"` (the `variant` of an enabled flag), then
    /// `,"configKey":"<key>","configPayload":"<payload as JSON text>"` from `split` on.
    bytes: Box<[u8]>,
    split: u32,
}

impl VariantBytes {
    pub fn new(key: &str, payload: &Value) -> Self {
        let mut bytes = Vec::with_capacity(2 * key.len() + 48);
        json_str(&mut bytes, key);
        let split = bytes.len();
        bytes.extend_from_slice(b",\"configKey\":");
        bytes.extend_from_within(..split);
        bytes.extend_from_slice(b",\"configPayload\":");
        // Serializing a `Value` cannot fail; the text is then a JSON string of its own.
        let text = serde_json::to_string(payload).unwrap_or_else(|_| "null".to_string());
        json_str(&mut bytes, &text);
        Self { bytes: bytes.into(), split: u32::try_from(split).unwrap_or(u32::MAX) }
    }

    /// `"<key>"`: the `variant` of an enabled flag.
    pub fn variant(&self) -> &[u8] {
        self.bytes.get(..self.split as usize).unwrap_or_default()
    }

    /// `,"configKey":"<key>","configPayload":"<payload as JSON text>"`.
    pub fn metadata(&self) -> &[u8] {
        self.bytes.get(self.split as usize..).unwrap_or_default()
    }
}

/// A flag's constant parts of its OFREP answers, borrowed from the flag's own text (its
/// `/features/evaluated` openings hold the same key and targeting version; a copy of them cost
/// each flag of every worker about 64 bytes).
#[derive(Debug, Clone, Copy)]
pub struct FlagBytes<'a> {
    /// `"key":"<key>"`.
    pub key_member: &'a [u8],
    /// `,"targetingVersion":N`; empty without a targeting version.
    pub targeting_version: &'a [u8],
    /// Per rule a 1 when it holds a percentage rollout (SPLIT when it is the first to match), a 0
    /// when not; empty when no rule holds one.
    pub rollout: &'a [u8],
    /// DISABLED (no rules) or STATIC (constant rules only); `None` when the context decides.
    pub fixed: Option<Fixed>,
}

/// A reason no context changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixed {
    /// No rules.
    Disabled,
    /// Constant rules only.
    Static,
}

impl Fixed {
    pub fn reason(self) -> &'static str {
        match self {
            Fixed::Disabled => "DISABLED",
            Fixed::Static => "STATIC",
        }
    }
}

impl FlagBytes<'_> {
    /// Write the TARGETING_KEY_MISSING failure object of this flag (`key`: its key).
    pub fn write_missing_key(&self, out: &mut Vec<u8>, key: &str) {
        out.push(b'{');
        out.extend_from_slice(self.key_member);
        out.extend_from_slice(b",\"errorCode\":\"TARGETING_KEY_MISSING\",\"errorDetails\":");
        // Printable ASCII without quotes or backslashes (every key the control plane accepts)
        // is the same in Python's repr and in JSON: written as is, without allocating.
        if key.bytes().all(|b| matches!(b, b' '..=b'~') && !matches!(b, b'\'' | b'"' | b'\\')) {
            out.extend_from_slice(b"\"flag '");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"' needs a targetingKey (or user.id) in the context\"");
        } else {
            json_str(out, &targeting_key_missing(key));
        }
        out.push(b'}');
    }

    /// The reason of an evaluation that `first_match` (the index of the first matching rule,
    /// `None` when none matched) decided.
    pub fn reason(&self, first_match: Option<usize>) -> &'static str {
        match (self.fixed, first_match) {
            (Some(fixed), _) => fixed.reason(),
            (None, None) => "DEFAULT",
            (None, Some(i)) if self.rollout.get(i) == Some(&1) => "SPLIT",
            (None, Some(_)) => "TARGETING_MATCH",
        }
    }

    /// One success object.
    pub fn write_success(
        &self,
        out: &mut Vec<u8>,
        enabled: bool,
        reason: &str,
        config: Option<&VariantBytes>,
        flag_state_version: u64,
    ) {
        out.push(b'{');
        out.extend_from_slice(self.key_member);
        out.extend_from_slice(b",\"value\":");
        out.extend_from_slice(if enabled { b"true" } else { b"false" });
        out.extend_from_slice(b",\"reason\":\"");
        // Reasons are constant upper-case ASCII words: no escaping needed.
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"\",\"variant\":");
        match (config, enabled) {
            (Some(c), true) => out.extend_from_slice(c.variant()),
            (_, true) => out.extend_from_slice(b"\"on\""),
            (_, false) => out.extend_from_slice(b"\"off\""),
        }
        out.extend_from_slice(b",\"metadata\":{\"flagStateVersion\":");
        write_u64(out, flag_state_version);
        out.extend_from_slice(self.targeting_version);
        if let Some(c) = config {
            out.extend_from_slice(c.metadata());
        }
        out.extend_from_slice(b"}}");
    }
}

/// The TARGETING_KEY_MISSING details of flag `key` (as `server/ofrep.py` words them).
pub fn targeting_key_missing(key: &str) -> String {
    format!("flag {} needs a targetingKey (or user.id) in the context", py_repr(key))
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_u64(out: &mut Vec<u8>, n: u64) {
    // Formatting into a Vec cannot fail, and allocates nothing beyond the Vec's growth.
    let _ = write!(out, "{n}");
}

/// Python's `repr` of a string: single quotes unless it holds a single quote and no double one;
/// backslash, the quote, `\t`, `\n`, `\r` and other control characters escaped. Exact for ASCII
/// (flag keys the control plane accepts are `[a-z0-9-_.]+`) and for every character Unicode has
/// assigned (controls, separators, format and private-use characters escaped as Python does);
/// unassigned code points, which Python also escapes, are kept.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            ' ' => out.push(' '),
            c if c.is_control() || c.is_whitespace() || is_format(c) => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Unicode's format (Cf) and private-use (Co) characters, which Python's `repr` escapes (Unicode
/// 14, Python 3.11's tables).
fn is_format(c: char) -> bool {
    matches!(c as u32, 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x890..=0x891 | 0x8e2 | 0x180e
        | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2064 | 0x2066..=0x206f | 0xfeff | 0xfff9..=0xfffb
        | 0x110bd | 0x110cd | 0x13430..=0x13438 | 0x1bca0..=0x1bca3 | 0x1d173..=0x1d17a | 0xe0001
        | 0xe0020..=0xe007f | 0xe000..=0xf8ff | 0xf0000..=0xffffd | 0x100000..=0x10fffd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `"key":"<key>"`, as a flag's text holds it.
    fn key_member(key: &str) -> Vec<u8> {
        let mut out = b"\"key\":".to_vec();
        json_str(&mut out, key);
        out
    }

    #[test]
    fn repr_quotes_as_python() {
        assert_eq!(py_repr("flag-1"), "'flag-1'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("it's \"x\""), "'it\\'s \"x\"'");
        assert_eq!(py_repr("a\\b\tc\n\u{1}\u{7f}"), "'a\\\\b\\tc\\n\\x01\\x7f'");
        assert_eq!(py_repr("é\u{a0}\u{200b}"), "'é\\xa0\\u200b'");
    }

    #[test]
    fn success_objects() {
        let f = key_member("f");
        let bytes =
            FlagBytes { key_member: &f, targeting_version: b",\"targetingVersion\":3", rollout: &[0, 1], fixed: None };
        assert_eq!(bytes.reason(None), "DEFAULT");
        assert_eq!(bytes.reason(Some(0)), "TARGETING_MATCH");
        assert_eq!(bytes.reason(Some(1)), "SPLIT");
        let variant = VariantBytes::new("gold", &json!({"seats": 10}));
        let mut out = Vec::new();
        bytes.write_success(&mut out, true, "SPLIT", Some(&variant), 12);
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"key":"f","value":true,"reason":"SPLIT","variant":"gold","metadata":{"flagStateVersion":12,"targetingVersion":3,"configKey":"gold","configPayload":"{\"seats\":10}"}}"#
        );
        out.clear();
        let g = key_member("g");
        FlagBytes { key_member: &g, targeting_version: b"", rollout: b"", fixed: Some(Fixed::Static) }
            .write_success(&mut out, false, "STATIC", None, 0);
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"key":"g","value":false,"reason":"STATIC","variant":"off","metadata":{"flagStateVersion":0}}"#
        );
        out.clear();
        bytes.write_missing_key(&mut out, "f");
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"key":"f","errorCode":"TARGETING_KEY_MISSING","errorDetails":"flag 'f' needs a targetingKey (or user.id) in the context"}"#
        );
    }

    #[test]
    fn missing_key_objects_are_the_escaped_details_of_any_key() {
        for key in ["f", "flag-1.a_b", "it's", "a\"b", "it's \"x\"", "x\\y", "tab\there", "é", "sp ace", ""] {
            let mut out = Vec::new();
            let member = key_member(key);
            FlagBytes {
                key_member: &member,
                targeting_version: b",\"targetingVersion\":1",
                rollout: &[1],
                fixed: None,
            }
            .write_missing_key(&mut out, key);
            let mut want = b"{\"key\":".to_vec();
            json_str(&mut want, key);
            want.extend_from_slice(b",\"errorCode\":\"TARGETING_KEY_MISSING\",\"errorDetails\":");
            json_str(&mut want, &targeting_key_missing(key));
            want.push(b'}');
            assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want), "{key:?}");
        }
    }
}
