//! Query strings split exactly as the edge's Python stack does (Starlette's `QueryParams`:
//! `urllib.parse.parse_qsl(qs.decode("latin-1"), keep_blank_values=True)`), in one pass.
//!
//! Semantics kept bit for bit, since a context attribute must mean the same on every route:
//! fields split on `&` (empty ones skipped), name and value on the first `=` (a missing value is
//! empty), `+` is a space, and `%XX` escapes inside each run of ASCII are decoded as UTF-8 with
//! U+FFFD for invalid sequences; a `%` without two hex digits stays literal, and bytes of 0x80
//! and above are the Latin-1 characters they were decoded to.

/// Every `(name, value)` pair of `qs`, in order.
pub fn parse_query(qs: &[u8]) -> Vec<(String, String)> {
    qs.split(|&b| b == b'&')
        .filter(|field| !field.is_empty())
        .map(|field| match field.iter().position(|&b| b == b'=') {
            Some(eq) => (unquote_plus(&field[..eq]), unquote_plus(&field[eq + 1..])),
            None => (unquote_plus(field), String::new()),
        })
        .collect()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unquote_plus(part: &[u8]) -> String {
    let mut out = String::with_capacity(part.len());
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < part.len() {
        if part[i] >= 0x80 {
            out.push(char::from(part[i]));
            i += 1;
            continue;
        }
        let start = i;
        while i < part.len() && part[i] < 0x80 {
            i += 1;
        }
        let run = &part[start..i];
        decoded.clear();
        let mut j = 0;
        while j < run.len() {
            let b = run[j];
            if b == b'%' {
                let digit = |k: usize| run.get(k).copied().and_then(hex);
                if let (Some(hi), Some(lo)) = (digit(j + 1), digit(j + 2)) {
                    decoded.push(hi << 4 | lo);
                    j += 3;
                    continue;
                }
            }
            decoded.push(if b == b'+' { b' ' } else { b });
            j += 1;
        }
        out.push_str(&String::from_utf8_lossy(&decoded));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse_query;

    fn pairs(qs: &[u8]) -> Vec<(String, String)> {
        parse_query(qs)
    }

    #[test]
    fn fields_names_and_values() {
        assert_eq!(pairs(b""), vec![]);
        assert_eq!(
            pairs(b"a=1&&b&c=&=d&e=f=g"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "".into()),
                ("c".into(), "".into()),
                ("".into(), "d".into()),
                ("e".into(), "f=g".into()),
            ]
        );
    }

    #[test]
    fn escapes_plus_and_latin1() {
        assert_eq!(pairs(b"k=a+b%2B%20c")[0].1, "a b+ c");
        assert_eq!(pairs(b"k=%C3%A9")[0].1, "é");
        assert_eq!(pairs(b"k=%zz%4")[0].1, "%zz%4");
        assert_eq!(pairs(b"k=%ff")[0].1, "\u{fffd}");
        // A raw byte 0xE9 is the Latin-1 character, never a UTF-8 sequence.
        assert_eq!(pairs(b"k=\xe9%41")[0].1, "\u{e9}A");
        // An escape split by a raw non-ASCII byte is literal.
        assert_eq!(pairs(b"k=%4\xe91")[0].1, "%4\u{e9}1");
    }
}
