//! CSV export round-trips through an RFC 4180 parser (names with quotes, commas and line
//! breaks), rows come out in the order asked, writes are atomic, PNGs decode to the pixels
//! saved.

mod analysis_common;

use analysis_common::{load, price, scratch};
use petasos_compiler::cost::Report;
use petasos_viewer::export::{save_png, table_csv, write_atomic, ExportError, CSV_COLUMNS};

/// A strict RFC 4180 parser: quoted fields may hold commas, doubled quotes and line breaks.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                assert!(at_start, "quote inside an unquoted field");
                quoted = true;
                at_start = false;
            }
            ',' => {
                row.push(std::mem::take(&mut field));
                at_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                at_start = true;
            }
            _ => {
                field.push(c);
                at_start = false;
            }
        }
    }
    assert!(!quoted, "unterminated quoted field");
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

#[test]
fn csv_round_trips_awkward_names_in_the_given_order() {
    let g = load("demo-cnn");
    let mut est = price(&g, "apple-m2");
    let n = est.work.ops.len();
    assert!(n >= 4, "demo-cnn has {n} ops");
    let awkward = [
        "conv, \"the first\"",
        "line\nbreak",
        " padded ",
        "plain",
        "a\"b,c\"\"d",
    ];
    for (i, w) in est.work.ops.iter_mut().enumerate() {
        w.name = format!("{}#{i}", awkward[i % awkward.len()]);
        if i % 2 == 0 {
            w.layer = format!("/blk,{i}/\"x\"");
        }
    }
    let report = Report::new("demo-cnn", &est);
    let order: Vec<usize> = (0..n).rev().collect();
    let text = table_csv(&report, &order).expect("csv");
    let rows = parse_csv(&text);
    assert_eq!(rows.len(), n + 1, "header + one line per op");
    let header: Vec<&str> = rows[0].iter().map(String::as_str).collect();
    assert_eq!(header, CSV_COLUMNS);
    let col = |name: &str| CSV_COLUMNS.iter().position(|c| *c == name).expect("column");
    for (line, &op) in rows[1..].iter().zip(&order) {
        assert_eq!(line.len(), CSV_COLUMNS.len(), "fields in {line:?}");
        let r = &report.ops[op];
        assert_eq!(line[col("name")], r.name);
        assert_eq!(line[col("layer")], r.layer);
        assert_eq!(line[col("op_type")], r.op_type);
        assert_eq!(line[col("macs")].parse::<u64>().expect("macs"), r.macs);
        let lat: f64 = line[col("latency_s")].parse().expect("latency");
        assert!((lat - r.latency_s).abs() <= 1e-12 * r.latency_s.abs().max(1e-30));
    }
    // A subset, in a shuffled order.
    let some = [2usize, 0, 3];
    let rows = parse_csv(&table_csv(&report, &some).expect("csv"));
    let names: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    let want: Vec<&str> = some.iter().map(|&i| report.ops[i].name.as_str()).collect();
    assert_eq!(names, want);
    // An index past the table is an error, not a silent skip.
    match table_csv(&report, &[0, n]) {
        Err(ExportError::RowOutOfRange { row, rows }) => {
            assert_eq!((row, rows), (n, n));
        }
        other => panic!("expected RowOutOfRange, got {other:?}"),
    }
}

#[test]
fn writes_are_atomic() {
    let d = scratch("atomic");
    let p = d.join("table.csv");
    write_atomic(&p, b"first").expect("write");
    write_atomic(&p, b"second, longer").expect("overwrite");
    assert_eq!(std::fs::read(&p).expect("read"), b"second, longer");
    let left: Vec<_> = std::fs::read_dir(&d)
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        vec!["table.csv".to_string()],
        "temp files left behind"
    );
    // Into a folder that does not exist: an error naming the path, nothing created.
    let bad = d.join("no-such-dir").join("t.csv");
    let e = write_atomic(&bad, b"x").expect_err("must fail");
    assert!(e.to_string().contains("no-such-dir"), "{e}");
    assert!(!bad.exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn png_decodes_to_the_saved_pixels() {
    let d = scratch("png");
    let p = d.join("view.png");
    let (w, h) = (5usize, 3usize);
    let pixels: Vec<egui::Color32> = (0..w * h)
        .map(|i| egui::Color32::from_rgb((i * 17) as u8, (255 - i * 13) as u8, (i * 7 + 3) as u8))
        .collect();
    let img = egui::ColorImage::new([w, h], pixels.clone());
    save_png(&p, &img).expect("save");
    let back = image::load_from_memory(&std::fs::read(&p).expect("read"))
        .expect("decode")
        .to_rgba8();
    assert_eq!((back.width() as usize, back.height() as usize), (w, h));
    for (i, px) in back.pixels().enumerate() {
        let c = pixels[i];
        assert_eq!(px.0, [c.r(), c.g(), c.b(), 255], "pixel {i}");
    }
    // A malformed image is an error, and nothing is written.
    let bad = egui::ColorImage {
        size: [4, 4],
        source_size: egui::vec2(4.0, 4.0),
        pixels: vec![egui::Color32::RED; 3],
    };
    let q = d.join("bad.png");
    assert!(save_png(&q, &bad).is_err());
    assert!(!q.exists());
    let _ = std::fs::remove_dir_all(&d);
}

/// A wgpu test renderer, or `None` (after a loud NOT RUN line) when there is no adapter.
fn renderer(test: &str) -> Option<egui_kittest::wgpu::WgpuTestRenderer> {
    let r = std::panic::catch_unwind(egui_kittest::wgpu::WgpuTestRenderer::new);
    if r.is_err() {
        analysis_common::loud(&format!(
            "NOT RUN: no wgpu adapter ({test}; install mesa-vulkan-drivers)"
        ));
    }
    r.ok()
}

#[test]
fn screenshot_of_the_whatif_panel_saves_as_png() {
    let Some(r) = renderer("screenshot_of_the_whatif_panel_saves_as_png") else {
        return;
    };
    let g = load("demo-cnn");
    let est = price(&g, "apple-m2");
    let mut panel = petasos_viewer::whatif::WhatIfPanel::new();
    let mut h = egui_kittest::Harness::builder()
        .with_size([640.0, 480.0])
        .renderer(r)
        .build_ui_state(
            move |ui, est: &mut petasos_compiler::cost::Estimator| {
                panel.show(ui, est, &[]);
            },
            est,
        );
    let d = scratch("screenshot");
    let p = d.join("whatif.png");
    let rx = petasos_viewer::export::request_png(&h.ctx, p.clone());
    h.run();
    let saved = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("screenshot delivered")
        .expect("saved");
    assert_eq!(saved, p);
    let img = image::load_from_memory(&std::fs::read(&p).expect("read"))
        .expect("decode")
        .to_rgba8();
    let rendered = h.render().expect("render");
    assert_eq!(img.dimensions(), rendered.dimensions());
    // Not a blank image: the panel's text makes many distinct colours.
    let distinct: std::collections::HashSet<[u8; 4]> = img.pixels().map(|p| p.0).collect();
    assert!(distinct.len() > 10, "{} colours", distinct.len());
    eprintln!(
        "what-if panel screenshot {}x{}, {} colours",
        img.width(),
        img.height(),
        distinct.len()
    );
    let _ = std::fs::remove_dir_all(&d);
}
