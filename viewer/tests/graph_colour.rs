//! Metric colours: ordered along the ramp, NaN -> none, log scale separates small values,
//! and the number formatter used on group boxes.

use petasos_viewer::graph::colour::{metric_colours_scaled, ramp};
use petasos_viewer::graph::draw::short_num;
use petasos_viewer::graph::metric_colours;

/// Position of a colour along the ramp (nearest sample).
fn ramp_pos(c: egui::Color32) -> usize {
    (0..=1000)
        .min_by_key(|&k| {
            let r = ramp(k as f32 / 1000.0);
            let d = |a: u8, b: u8| (a as i32 - b as i32).pow(2);
            d(r.r(), c.r()) + d(r.g(), c.g()) + d(r.b(), c.b())
        })
        .unwrap_or(0)
}

#[test]
fn colours_follow_the_values() {
    let v = [3.0, 1.0, f64::NAN, 2.0, 10.0];
    let c = metric_colours(&v);
    assert_eq!(c.len(), v.len());
    assert!(c[2].is_none(), "NaN has no colour");
    let p: Vec<usize> = [1, 3, 0, 4]
        .iter()
        .map(|&i| ramp_pos(c[i].expect("finite")))
        .collect();
    assert!(
        p.windows(2).all(|w| w[0] < w[1]),
        "monotone along the ramp: {p:?}"
    );
    assert_eq!(p[0], 0);
    assert_eq!(p[3], 1000);
}

#[test]
fn log_scale_spreads_small_values() {
    let v = [1.0, 10.0, 100.0, 1e6];
    let lin = metric_colours_scaled(&v, false);
    let log = metric_colours_scaled(&v, true);
    let pos = |c: &[Option<egui::Color32>], i: usize| ramp_pos(c[i].expect("finite"));
    // Linear: 1, 10, 100 are all at the bottom; log: evenly spread (1/6, 2/6 of the way).
    assert!(pos(&lin, 2) < 10);
    assert!((pos(&log, 1) as i32 - 167).abs() < 30, "{}", pos(&log, 1));
    assert!((pos(&log, 2) as i32 - 333).abs() < 30, "{}", pos(&log, 2));
}

#[test]
fn equal_values_get_one_colour() {
    let c = metric_colours(&[5.0, 5.0]);
    assert_eq!(c[0], c[1]);
    assert!(c[0].is_some());
}

#[test]
fn short_numbers() {
    assert_eq!(short_num(0.5), "0.50");
    assert_eq!(short_num(12.34), "12.3");
    assert_eq!(short_num(1234.0), "1.23k");
    assert_eq!(short_num(5.6e9), "5.60G");
    assert_eq!(short_num(-250e6), "-250M");
}
