//! SemVer 2.0.0: strict parsing, precedence, and the loose forms flagd accepts.
//!
//! * [`parse`] is the grammar of semver.org (no leading zeros in numeric identifiers, non-empty
//!   `[0-9A-Za-z-]` identifiers, prerelease after `-`, build metadata after `+`).
//! * [`parse_loose`] is what flagd's `sem_ver` accepts: one leading `v`/`V` is stripped and the
//!   short forms `1` and `1.2` mean `1.0.0` and `1.2.0`.
//! * [`compare`] is SemVer precedence: build metadata is ignored and a prerelease sorts below
//!   its release. `Version`'s `PartialEq` compares every field (including build metadata); use
//!   [`compare`] for precedence equality.

use std::cmp::Ordering;
use std::fmt;

/// One dot-separated prerelease identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prerelease {
    /// Digits only, without leading zeros (kept as text so that any size compares exactly).
    Numeric(String),
    /// Contains at least one non-digit.
    Alpha(String),
}

impl Prerelease {
    pub fn as_str(&self) -> &str {
        match self {
            Prerelease::Numeric(s) | Prerelease::Alpha(s) => s,
        }
    }
}

/// A parsed semantic version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: Vec<Prerelease>,
    pub build: Vec<String>,
}

impl Version {
    pub fn new(major: u64, minor: u64, patch: u64) -> Self {
        Version { major, minor, patch, pre: Vec::new(), build: Vec::new() }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        for (i, p) in self.pre.iter().enumerate() {
            f.write_str(if i == 0 { "-" } else { "." })?;
            f.write_str(p.as_str())?;
        }
        for (i, b) in self.build.iter().enumerate() {
            f.write_str(if i == 0 { "+" } else { "." })?;
            f.write_str(b)?;
        }
        Ok(())
    }
}

/// `0` or a non-zero digit followed by digits, as a `u64` (overflow is invalid).
fn numeric_identifier(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) || (b.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

/// Strict SemVer 2.0.0 (`MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`, nothing else).
pub fn parse(s: &str) -> Option<Version> {
    // Digits and dots only (`1.4.2`, the form nearly every context version takes): one pass over
    // the bytes. `sem_ver` rules parse the context's version once per flag, and the general path's
    // string splitting was most of a W2 JSON Logic rule's cost.
    if s.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        let mut parts = [0u64; 3];
        let mut n = 0;
        for part in s.as_bytes().split(|&c| c == b'.') {
            *parts.get_mut(n)? = numeric_digits(part)?;
            n += 1;
        }
        let [major, minor, patch] = parts;
        return (n == 3).then(|| Version::new(major, minor, patch));
    }
    parse_general(s)
}

/// [`numeric_identifier`] of ASCII digits.
fn numeric_digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() || (b.len() > 1 && b.first() == Some(&b'0')) {
        return None;
    }
    b.iter().try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// [`parse`] of any text.
fn parse_general(s: &str) -> Option<Version> {
    let (rest, build) = match s.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let mut parts = core.split('.');
    let major = numeric_identifier(parts.next()?)?;
    let minor = numeric_identifier(parts.next()?)?;
    let patch = numeric_identifier(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    let mut v = Version::new(major, minor, patch);
    if let Some(pre) = pre {
        for id in pre.split('.') {
            if !is_identifier(id) {
                return None;
            }
            if id.bytes().all(|c| c.is_ascii_digit()) {
                if id.len() > 1 && id.starts_with('0') {
                    return None;
                }
                v.pre.push(Prerelease::Numeric(id.to_owned()));
            } else {
                v.pre.push(Prerelease::Alpha(id.to_owned()));
            }
        }
    }
    if let Some(build) = build {
        for id in build.split('.') {
            if !is_identifier(id) {
                return None;
            }
            v.build.push(id.to_owned());
        }
    }
    Some(v)
}

/// flagd's lenient form: strip ONE leading `v`/`V`, then strict SemVer, or the short forms
/// `MAJOR` and `MAJOR.MINOR` (digits only, no leading zeros) padded with zeros.
pub fn parse_loose(s: &str) -> Option<Version> {
    let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
    if let Some(v) = parse(s) {
        return Some(v);
    }
    let mut parts = s.split('.');
    let major = numeric_identifier(parts.next()?)?;
    let minor = match parts.next() {
        Some(p) => numeric_identifier(p)?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(Version::new(major, minor, 0))
}

fn compare_identifier(a: &Prerelease, b: &Prerelease) -> Ordering {
    match (a, b) {
        // No leading zeros, so a longer digit string is a larger number.
        (Prerelease::Numeric(x), Prerelease::Numeric(y)) => {
            x.len().cmp(&y.len()).then_with(|| x.as_bytes().cmp(y.as_bytes()))
        }
        (Prerelease::Numeric(_), Prerelease::Alpha(_)) => Ordering::Less,
        (Prerelease::Alpha(_), Prerelease::Numeric(_)) => Ordering::Greater,
        (Prerelease::Alpha(x), Prerelease::Alpha(y)) => x.as_bytes().cmp(y.as_bytes()),
    }
}

/// SemVer 2.0.0 precedence (build metadata ignored).
pub fn compare(a: &Version, b: &Version) -> Ordering {
    let core = (a.major, a.minor, a.patch).cmp(&(b.major, b.minor, b.patch));
    if core != Ordering::Equal {
        return core;
    }
    match (a.pre.is_empty(), b.pre.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => {
            for (x, y) in a.pre.iter().zip(&b.pre) {
                let o = compare_identifier(x, y);
                if o != Ordering::Equal {
                    return o;
                }
            }
            a.pre.len().cmp(&b.pre.len())
        }
    }
}

/// Compare two version strings with [`parse_loose`]; the error names the invalid side.
pub fn compare_str(a: &str, b: &str) -> Result<Ordering, String> {
    let va = parse_loose(a).ok_or_else(|| format!("invalid version on the left: {a:?}"))?;
    let vb = parse_loose(b).ok_or_else(|| format!("invalid version on the right: {b:?}"))?;
    Ok(compare(&va, &vb))
}

/// flagd `^`: same major version.
pub fn caret(a: &Version, b: &Version) -> bool {
    a.major == b.major
}

/// flagd `~`: same major and minor version.
pub fn tilde(a: &Version, b: &Version) -> bool {
    a.major == b.major && a.minor == b.minor
}

/// npm-style caret range `^base`: `v >= base` and below the next breaking version
/// (`^1.2.3` is `<2.0.0`, `^0.2.3` is `<0.3.0`, `^0.0.3` is `<0.0.4`).
pub fn satisfies_caret(v: &Version, base: &Version) -> bool {
    if compare(v, base) == Ordering::Less {
        return false;
    }
    if base.major > 0 {
        v.major == base.major
    } else if base.minor > 0 {
        v.major == 0 && v.minor == base.minor
    } else {
        v.major == 0 && v.minor == 0 && v.patch == base.patch
    }
}

/// npm-style tilde range `~base`: `v >= base` with the same major and minor (`~1.2.3` is `<1.3.0`).
pub fn satisfies_tilde(v: &Version, base: &Version) -> bool {
    compare(v, base) != Ordering::Less && v.major == base.major && v.minor == base.minor
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn digits_and_dots_parse_as_the_general_path(s in "[0-9.]{0,14}|[0-9]{18,22}\\.[0-9]{1,3}\\.0") {
            proptest::prop_assert_eq!(parse(&s), parse_general(&s));
        }
    }

    #[test]
    fn digits_and_dots_edge_cases() {
        for s in [
            "1.2.3",
            "0.0.0",
            "01.2.3",
            "1.02.3",
            "1.2",
            "1.2.3.4",
            "1..3",
            ".1.2",
            "1.2.",
            "",
            "18446744073709551615.0.0",
            "18446744073709551616.0.0",
        ] {
            assert_eq!(parse(s), parse_general(s), "{s}");
        }
        assert_eq!(parse("18446744073709551616.0.0"), None);
        assert_eq!(parse("10.20.30"), Some(Version::new(10, 20, 30)));
    }

    fn v(s: &str) -> Version {
        parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn semver_org_precedence_table() {
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1.0",
            "2.0.0",
            "2.1.0",
            "2.1.1",
        ];
        for (i, a) in chain.iter().enumerate() {
            for (j, b) in chain.iter().enumerate() {
                assert_eq!(compare(&v(a), &v(b)), i.cmp(&j), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn build_metadata_ignored() {
        assert_eq!(compare(&v("1.0.0+a"), &v("1.0.0+b.1")), Ordering::Equal);
        assert_eq!(compare(&v("1.0.0-rc.1+x"), &v("1.0.0-rc.1")), Ordering::Equal);
        assert_ne!(v("1.0.0+a"), v("1.0.0"));
        let full = v("1.2.3-rc.1.x-y+build.007");
        assert_eq!(full.to_string(), "1.2.3-rc.1.x-y+build.007");
        assert_eq!(full.build, vec!["build".to_string(), "007".to_string()]);
    }

    #[test]
    fn big_numeric_prerelease_identifiers() {
        let a = v("1.0.0-99999999999999999999999");
        let b = v("1.0.0-100000000000000000000000");
        assert_eq!(compare(&a, &b), Ordering::Less);
        assert_eq!(compare(&v("1.0.0-2"), &v("1.0.0-10")), Ordering::Less);
        assert_eq!(compare(&v("1.0.0-10"), &v("1.0.0-a")), Ordering::Less);
    }

    #[test]
    fn invalid_strict_versions() {
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "01.2.3",
            "1.02.3",
            "1.2.03",
            "v1.2.3",
            " 1.2.3",
            "1.2.3 ",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-01",
            "1.2.3-a..b",
            "1.2.3-a_b",
            "1.2.3+a+b",
            "1.2.3+a..b",
            "a.b.c",
            "-1.2.3",
            "1.-2.3",
            "1.2.-3",
            "99999999999999999999999.0.0",
            "1.2.3-ü",
        ] {
            assert!(parse(bad).is_none(), "{bad:?} should be invalid");
        }
        assert!(parse("1.2.3-0").is_some());
        assert!(parse("1.2.3-0a").is_some());
        assert!(parse("1.2.3-00a").is_some());
        assert!(parse("1.2.3+007").is_some());
        assert!(parse("0.0.0").is_some());
        assert!(parse("1.2.3----RC-SNAPSHOT.12.9.1--.12+788").is_some());
    }

    #[test]
    fn loose_forms() {
        assert_eq!(parse_loose("v1"), Some(Version::new(1, 0, 0)));
        assert_eq!(parse_loose("1.2"), Some(Version::new(1, 2, 0)));
        assert_eq!(parse_loose("V1.2.3"), Some(Version::new(1, 2, 3)));
        assert_eq!(parse_loose("v1.0.0-rc.1").map(|x| x.pre.len()), Some(2));
        for bad in ["vv1.0.0", "1.", ".1", "01", "1.02", "v", "", "1.2-rc", "1.2.3.4", "x1"] {
            assert!(parse_loose(bad).is_none(), "{bad:?} should be invalid");
        }
        assert_eq!(compare_str("v1.0", "1.0.0"), Ok(Ordering::Equal));
        assert_eq!(compare_str("1.10.0", "1.9.0"), Ok(Ordering::Greater));
        assert!(compare_str("nope", "1.0.0").unwrap_err().contains("left"));
        assert!(compare_str("1.0.0", "nope").unwrap_err().contains("right"));
    }

    #[test]
    fn caret_and_tilde() {
        assert!(caret(&v("1.3.4"), &v("1.5.3")));
        assert!(!caret(&v("2.1.1"), &v("1.1.1")));
        assert!(tilde(&v("1.3.4"), &v("1.3.1")));
        assert!(!tilde(&v("2.2.1"), &v("2.1.1")));

        assert!(satisfies_caret(&v("1.9.9"), &v("1.2.3")));
        assert!(!satisfies_caret(&v("2.0.0"), &v("1.2.3")));
        assert!(!satisfies_caret(&v("1.2.2"), &v("1.2.3")));
        assert!(satisfies_caret(&v("0.2.9"), &v("0.2.3")));
        assert!(!satisfies_caret(&v("0.3.0"), &v("0.2.3")));
        assert!(satisfies_caret(&v("0.0.3"), &v("0.0.3")));
        assert!(!satisfies_caret(&v("0.0.4"), &v("0.0.3")));
        assert!(satisfies_tilde(&v("1.2.9"), &v("1.2.3")));
        assert!(!satisfies_tilde(&v("1.3.0"), &v("1.2.3")));
        assert!(!satisfies_tilde(&v("1.2.3-rc.1"), &v("1.2.3")));
    }
}
