//! DevCycle's own version comparison (`versionCompare.js` and `checkVersionFilter` of
//! @devcycle/bucketing), which is not SemVer: versions are dot-separated runs of ASCII digits
//! compared numerically, the shorter side padded with zeros.

use std::cmp::Ordering;

/// Numeric parts of a version, each the JavaScript `Number` of a run of ASCII digits.
pub(crate) type Parts = Box<[f64]>;

/// `versionCompare(v1, v2, { zeroExtend: true })`: `None` where the JavaScript returns `NaN`
/// (a part that is not one or more ASCII digits on either side).
pub fn version_compare(v1: &str, v2: &str) -> Option<Ordering> {
    Some(compare_parts(&parse_parts(v1)?, &parse_parts(v2)?))
}

/// Parts of a version whose every dot-separated part matches `/^\d+$/`.
pub(crate) fn parse_parts(s: &str) -> Option<Parts> {
    s.split('.').map(parse_part).collect()
}

fn parse_part(part: &str) -> Option<f64> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits only, so this is JavaScript's `Number(part)` (correctly rounded, or Infinity).
    part.parse::<f64>().ok()
}

/// Zero-extended numeric comparison of two part lists.
pub(crate) fn compare_parts(a: &[f64], b: &[f64]) -> Ordering {
    let len = a.len().max(b.len());
    for i in 0..len {
        let x = a.get(i).copied().unwrap_or(0.0);
        let y = b.get(i).copied().unwrap_or(0.0);
        if x == y {
            continue;
        }
        return if x > y { Ordering::Greater } else { Ordering::Less };
    }
    Ordering::Equal
}

/// `convertToSemanticVersion` followed by the part check: at least three parts, empty parts
/// read as `0`.
pub(crate) fn parse_user_version(s: &str) -> Option<Vec<f64>> {
    let mut parts = Vec::with_capacity(3);
    for part in s.split('.') {
        parts.push(if part.is_empty() { 0.0 } else { parse_part(part)? });
    }
    while parts.len() < 3 {
        parts.push(0.0);
    }
    Some(parts)
}

/// The clean-up applied before `>`/`>=`/`<`/`<=` comparisons:
/// `replace(/[^(\d|.|\-)]/g, '').replace(/-.*/g, '')`, i.e. keep only ASCII digits and the
/// characters `( ) | . -`, then cut at the first `-` (which drops any prerelease part).
pub(crate) fn strip_version(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_digit() || matches!(c, '(' | ')' | '|' | '.' | '-'))
        .take_while(|&c| c != '-')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_like_version_compare_js() {
        use Ordering::*;
        assert_eq!(version_compare("1.2.3", "1.2.3"), Some(Equal));
        assert_eq!(version_compare("1.2", "1.2.0.0"), Some(Equal));
        assert_eq!(version_compare("1.10", "1.9"), Some(Greater));
        assert_eq!(version_compare("01.002", "1.2"), Some(Equal));
        assert_eq!(version_compare("2", "10"), Some(Less));
        assert_eq!(version_compare("1.2.3.1", "1.2.3"), Some(Greater));
        assert_eq!(version_compare("9007199254740993", "9007199254740992"), Some(Equal));
        assert_eq!(version_compare("1.2.3-beta", "1.2.3"), None);
        assert_eq!(version_compare("1..2", "1.0.2"), None);
        assert_eq!(version_compare("v1.2", "1.2"), None);
        assert_eq!(version_compare("", "1"), None);
        assert_eq!(version_compare("1.2", "1.2."), None);
        assert_eq!(version_compare("١.٢", "1.2"), None);
    }

    #[test]
    fn user_versions_are_padded() {
        assert_eq!(parse_user_version("2"), Some(vec![2.0, 0.0, 0.0]));
        assert_eq!(parse_user_version("1..3"), Some(vec![1.0, 0.0, 3.0]));
        assert_eq!(parse_user_version(""), Some(vec![0.0, 0.0, 0.0]));
        assert_eq!(parse_user_version("1.2.3.4"), Some(vec![1.0, 2.0, 3.0, 4.0]));
        assert_eq!(parse_user_version("1.x"), None);
    }

    #[test]
    fn strip_drops_prerelease_and_letters() {
        assert_eq!(strip_version("1.2.3a-b6"), "1.2.3");
        assert_eq!(strip_version("1.2.3-beta.1"), "1.2.3");
        assert_eq!(strip_version("v2.0 (build 7)"), "2.0(7)");
        assert_eq!(strip_version("-1.0"), "");
        assert_eq!(strip_version("abc"), "");
        assert_eq!(strip_version("4.0.0.1"), "4.0.0.1");
    }
}
