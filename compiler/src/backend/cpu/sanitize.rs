//! Names and text from a model reaching generated C: identifiers, string literals, comments.
//!
//! Nothing from a model file is written to C source except through these functions:
//! [`Namer::ident`] (identifiers: `[A-Za-z0-9_]` only, prefixed, deduplicated), [`c_string`]
//! (string literals: everything outside printable ASCII, quotes, backslashes and `?` escaped)
//! and [`comment`] (comment text: printable ASCII only, `*/` broken up).

use std::collections::HashSet;

/// Longest identifier stem kept from a name (the rest is cut; the dedup suffix follows).
const MAX_STEM: usize = 48;

/// Makes unique C identifiers from arbitrary names.
#[derive(Debug, Default)]
pub struct Namer {
    used: HashSet<String>,
}

impl Namer {
    /// A fresh namer.
    pub fn new() -> Namer {
        Namer::default()
    }

    /// Reserves `ident` (e.g. a fixed runtime name) so no generated name equals it.
    pub fn reserve(&mut self, ident: &str) {
        self.used.insert(ident.to_string());
    }

    /// A unique identifier `prefix` + the sanitised `name`: every character outside
    /// `[A-Za-z0-9_]` becomes `_`, runs of `_` collapse, the stem is cut to 48 characters, and
    /// `_2`, `_3`, ... is appended when the result was already given out. `prefix` must be a
    /// valid identifier start (e.g. `k3_`); it also keeps names clear of C keywords.
    pub fn ident(&mut self, prefix: &str, name: &str) -> String {
        let base = format!("{prefix}{}", stem(name));
        let mut cand = base.clone();
        let mut k = 2;
        while self.used.contains(&cand) {
            cand = format!("{base}_{k}");
            k += 1;
        }
        self.used.insert(cand.clone());
        cand
    }
}

/// `name` reduced to `[A-Za-z0-9_]`, runs of `_` collapsed, trimmed, at most 48 characters.
pub fn stem(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if c == '_' && s.ends_with('_') {
            continue;
        }
        s.push(c);
        if s.len() >= MAX_STEM {
            break;
        }
    }
    s.trim_matches('_').to_string()
}

/// A C string literal (with the quotes) holding `s`'s UTF-8 bytes: printable ASCII stays,
/// `"`, `\` and `?` (trigraphs) are escaped, every other byte is a 3-digit octal escape.
pub fn c_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'?' => out.push_str("\\?"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03o}")),
        }
    }
    out.push('"');
    out
}

/// Text safe inside a `/* ... */` comment on one line: printable ASCII only (others become
/// `?`), `*/` and `/*` broken up, a trailing `\` removed (no line splicing), at most 200 chars.
pub fn comment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().take(200) {
        let c = if (' '..='~').contains(&c) { c } else { '?' };
        if (c == '/' && out.ends_with('*')) || (c == '*' && out.ends_with('/')) {
            out.push(' ');
        }
        out.push(c);
    }
    while out.ends_with('\\') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_valid_and_unique() {
        let mut n = Namer::new();
        let a = n.ident("k_", "conv/1.weight");
        let b = n.ident("k_", "conv_1_weight");
        let c = n.ident("k_", "int");
        assert_eq!(a, "k_conv_1_weight");
        assert_eq!(b, "k_conv_1_weight_2");
        assert_eq!(c, "k_int");
        let d = n.ident("v_", "*/ system(\"rm\"); /*\n");
        assert!(
            d.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{d}"
        );
        let long = n.ident("v_", &"x".repeat(500));
        assert!(long.len() <= 2 + MAX_STEM);
    }

    #[test]
    fn strings_and_comments_are_escaped() {
        assert_eq!(c_string("a\"b\\c?\n"), "\"a\\\"b\\\\c\\?\\012\"");
        assert_eq!(c_string("é"), "\"\\303\\251\"");
        let c = comment("x */ evil(); /* \\");
        assert!(
            !c.contains("*/") && !c.contains("/*") && !c.ends_with('\\'),
            "{c}"
        );
        assert_eq!(comment("a\nb"), "a?b");
    }
}
