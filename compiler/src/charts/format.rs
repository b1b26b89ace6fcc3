//! Text formatting for chart labels: numbers with SI prefixes and middle-ellipsised labels.

/// Bar chart labels longer than this many characters are shortened by [`shorten_path`] before
/// they are fitted to the chart's label column (which bounds the fitting work).
pub const MAX_LABEL_CHARS: usize = 160;

/// SI prefixes from pico (10^-12) to peta (10^15), one per power of 1000.
const PREFIXES: [&str; 10] = ["p", "n", "µ", "m", "", "k", "M", "G", "T", "P"];
const MIN_EXP: i32 = -12;
const MAX_EXP: i32 = 15;

/// Formats `value` with three significant digits and a decimal SI prefix before `unit`:
/// `format_si(0.00123, "s") == "1.23 ms"`, `format_si(12_300_000.0, "B") == "12.3 MB"`,
/// `format_si(0.5, "") == "500 m"`, `format_si(0.0, "s") == "0 s"`. Trailing zeros are
/// dropped (`1.5 ms`, not `1.50 ms`). Magnitudes beyond pico..peta keep the outermost prefix;
/// non-finite values print as Rust prints them (`NaN s`, `inf s`).
pub fn format_si(value: f64, unit: &str) -> String {
    let join = |num: String, prefix: &str| {
        let suffix = format!("{prefix}{unit}");
        if suffix.is_empty() {
            num
        } else {
            format!("{num} {suffix}")
        }
    };
    if !value.is_finite() {
        return join(value.to_string(), "");
    }
    if value == 0.0 {
        return join("0".to_string(), "");
    }
    let mut exp = ((value.abs().log10() / 3.0).floor() as i32 * 3).clamp(MIN_EXP, MAX_EXP);
    let mut mantissa = value / 10f64.powi(exp);
    // Rounding to three digits may carry into the next prefix (999.7 -> 1.00 k).
    if mantissa.abs() >= 999.5 && exp < MAX_EXP {
        exp += 3;
        mantissa /= 1000.0;
    }
    let decimals = if mantissa.abs() >= 99.95 {
        0
    } else if mantissa.abs() >= 9.995 {
        1
    } else {
        2
    };
    let mut num = format!("{mantissa:.decimals$}");
    if num.contains('.') {
        num = num.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if num == "-0" {
        num = "0".to_string();
    }
    let prefix = PREFIXES[((exp - MIN_EXP) / 3) as usize];
    join(num, prefix)
}

/// Shortens `label` to at most `max_chars` characters by replacing its middle with `…`,
/// keeping more of the end (the op's own name) than of the start (the outer layers):
/// `model.layers.12.attention.q_proj` stays whole under a large limit, and a long path
/// becomes `model.laye…attention.q_proj`. Labels within the limit are returned unchanged;
/// `max_chars` below 2 is treated as 2.
pub fn ellipsize_middle(label: &str, max_chars: usize) -> String {
    let max_chars = max_chars.max(2);
    let chars: Vec<char> = label.chars().collect();
    if chars.len() <= max_chars {
        return label.to_string();
    }
    let keep = max_chars - 1;
    let head = keep * 2 / 5;
    let tail = keep - head;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// Shortens a layer path (segments separated by `.` or `/`) until `fits` accepts it, by
/// replacing whole middle segments with `…` so the result stays readable and distinct:
/// `model.decoder.layers.12.self_attention.qkv_projection.matmul` can become
/// `model.…layers.12.…qkv_projection.matmul`. Segments go in this order, each group left to
/// right: middle segments without digits, the first segment, middle segments naming a
/// numbered child (`layers` before `12`), middle segments with digits in a name (`conv3`).
/// Index segments (all digits) and the last segment stay; if the label still does not fit,
/// [`ellipsize_middle`] cuts the shortened label by characters, down to 5 characters. Labels
/// that fit are returned unchanged.
pub fn shorten_path(label: &str, fits: impl Fn(&str) -> bool) -> String {
    if fits(label) {
        return label.to_string();
    }
    // Segments with the separator that follows each (none after the last).
    let mut segs: Vec<(&str, &str)> = Vec::new();
    let mut start = 0;
    for (i, c) in label.char_indices() {
        if c == '.' || c == '/' {
            segs.push((&label[start..i], &label[i..i + 1]));
            start = i + 1;
        }
    }
    segs.push((&label[start..], ""));
    let n = segs.len();
    let has_digit = |s: &str| s.chars().any(|c| c.is_ascii_digit());
    let is_index = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let names_child = |i: usize| i + 1 < n && is_index(segs[i + 1].0);
    let middle = 1..n.saturating_sub(1);
    // Empty segments (a leading `/`) are never replaced: there is nothing to save.
    let mut order: Vec<usize> = middle
        .clone()
        .filter(|&i| !has_digit(segs[i].0) && !names_child(i))
        .collect();
    if n > 1 && !has_digit(segs[0].0) {
        order.push(0);
    }
    order.extend(
        middle
            .clone()
            .filter(|&i| !has_digit(segs[i].0) && names_child(i)),
    );
    order.extend(middle.filter(|&i| has_digit(segs[i].0) && !is_index(segs[i].0)));
    let render = |dropped: &[bool]| {
        let mut out = String::new();
        let mut i = 0;
        while i < n {
            if dropped[i] {
                while i + 1 < n && dropped[i + 1] {
                    i += 1;
                }
                out.push('…');
            } else {
                out.push_str(segs[i].0);
                out.push_str(segs[i].1);
            }
            i += 1;
        }
        out
    };
    let mut dropped = vec![false; n];
    let mut text = label.to_string();
    for i in order.into_iter().filter(|&i| !segs[i].0.is_empty()) {
        dropped[i] = true;
        text = render(&dropped);
        if fits(&text) {
            return text;
        }
    }
    let mut chars = text.chars().count();
    let mut cut = text.clone();
    while !fits(&cut) && chars > 5 {
        chars -= 1;
        cut = ellipsize_middle(&text, chars);
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_prefixes_and_digits() {
        assert_eq!(format_si(0.00123, "s"), "1.23 ms");
        assert_eq!(format_si(12_300_000.0, "B"), "12.3 MB");
        assert_eq!(format_si(0.5, ""), "500 m");
        assert_eq!(format_si(0.0, "s"), "0 s");
        assert_eq!(format_si(1.5e-3, "s"), "1.5 ms");
        assert_eq!(format_si(1e-3, "s"), "1 ms");
        assert_eq!(format_si(999.7, "B"), "1 kB");
        assert_eq!(format_si(-2.5e-6, "J"), "-2.5 µJ");
        assert_eq!(format_si(42.0, ""), "42");
        assert_eq!(format_si(3e18, "B"), "3000 PB");
        assert_eq!(format_si(2e-15, "s"), "0 ps");
        assert_eq!(format_si(f64::NAN, "s"), "NaN s");
    }

    #[test]
    fn path_shortening_keeps_indices_and_tail() {
        let label =
            "model.decoder.transformer_layers.12.self_attention.grouped_query.qkv_proj.matmul";
        let within = |max: usize| move |t: &str| t.chars().count() <= max;
        assert_eq!(shorten_path(label, within(200)), label);
        assert_eq!(
            shorten_path(label, within(70)),
            "model.…transformer_layers.12.…grouped_query.qkv_proj.matmul"
        );
        assert_eq!(
            shorten_path(label, within(45)),
            "model.…transformer_layers.12.…qkv_proj.matmul"
        );
        assert_eq!(
            shorten_path(label, within(40)),
            "model.…transformer_layers.12.…matmul"
        );
        assert_eq!(
            shorten_path(label, within(33)),
            "…transformer_layers.12.…matmul"
        );
        assert_eq!(shorten_path(label, within(20)), "…12.…matmul");
        // Past every segment: cut by characters, never below 5.
        let cut = shorten_path(label, within(8));
        assert_eq!(cut.chars().count(), 8, "{cut}");
        assert_eq!(shorten_path(label, within(1)).chars().count(), 5);
        // No separators: plain middle ellipsis.
        assert_eq!(shorten_path("abcdefghij", within(5)), "a…hij");
        // Slash paths.
        assert_eq!(
            shorten_path("/encoder/block/3/conv/Conv_17", within(20)),
            "/…block/3/…Conv_17"
        );
        assert_eq!(
            shorten_path("/encoder/block/3/conv/Conv_17", within(12)),
            "/…3/…Conv_17"
        );
    }

    #[test]
    fn ellipsis_keeps_both_ends() {
        assert_eq!(ellipsize_middle("short", 10), "short");
        let long = "model.layers.12.self_attention.q_proj.matmul";
        let e = ellipsize_middle(long, 20);
        assert_eq!(e.chars().count(), 20);
        assert!(e.starts_with("model.") && e.ends_with("proj.matmul"), "{e}");
        assert!(e.contains('…'));
        // Multi-byte characters are counted as characters, never split.
        assert_eq!(ellipsize_middle("ααααααααα", 5).chars().count(), 5);
    }
}
