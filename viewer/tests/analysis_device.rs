//! The device picker driven through its UI: choosing a built-in profile or a unit returns it,
//! re-pricing keeps the work and the what-if options, a bad profile file shows its error inline
//! and keeps the previous profile, a good one loads.

mod analysis_common;

use analysis_common::{load, price, scratch};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use petasos_compiler::cost::profile::BUILTIN;
use petasos_compiler::cost::{DeviceProfile, OpOptions, Width};
use petasos_viewer::device::{reprice, DevicePicker, ProfileSource};

struct State {
    picker: DevicePicker,
    chosen: Vec<DeviceProfile>,
}

fn harness() -> Harness<'static, State> {
    Harness::builder().with_size([900.0, 400.0]).build_ui_state(
        |ui, s: &mut State| {
            if let Some(p) = s.picker.show(ui) {
                s.chosen.push(p);
            }
        },
        State {
            picker: DevicePicker::new("apple-m2"),
            chosen: Vec::new(),
        },
    )
}

fn pick(h: &mut Harness<'static, State>, combo: &str, item: &str) {
    h.get_by_label(combo).click();
    h.run();
    h.get_by_label(item).click();
    h.run();
}

fn load_path(h: &mut Harness<'static, State>, path: &str) {
    let field = h.get_by_label("Profile file:");
    field.focus();
    field.type_text(path);
    h.run();
    h.get_by_label("Load profile").click();
    h.run();
}

#[test]
fn choosing_a_builtin_device_and_unit_reprices() {
    let mut h = harness();
    assert!(h.state().picker.error().is_none());
    assert_eq!(
        h.state().picker.profile().map(|p| p.name.as_str()),
        Some("apple-m2")
    );
    pick(&mut h, "Device", "x86-avx512");
    let chosen = h
        .state()
        .chosen
        .last()
        .cloned()
        .expect("a profile was returned");
    assert_eq!(
        h.state().picker.source(),
        &ProfileSource::Builtin("x86-avx512".into())
    );

    // Re-price an estimate with options: the work is the same, the options carry over.
    let g = load("resnet18");
    let mut est = price(&g, "apple-m2");
    let mut w = est.what_if();
    w.ops.weight_bits = Some(Width::Bits(8.0));
    est.set_what_if(w);
    let op = 5;
    est.set_op_options(
        op,
        Some(OpOptions {
            sparsity: Some(0.25),
            ..OpOptions::default()
        }),
    );
    let re = reprice(&est, &chosen, h.state().picker.unit()).expect("reprice");
    assert_eq!(re.device, chosen.name);
    assert_eq!(re.work.ops.len(), est.work.ops.len());
    assert_eq!(re.what_if(), est.what_if());
    assert_eq!(re.op_options(op), est.op_options(op));
    assert_eq!(re.sums().macs, est.sums().macs, "same work, same options");
    assert_ne!(re.sums().latency_s, est.sums().latency_s, "another device");

    // Units of the chosen device: back to apple-m2, then its Neural Engine.
    pick(&mut h, "Device", "apple-m2");
    let n = h.state().chosen.len();
    pick(&mut h, "Unit", "ane");
    let s = h.state();
    assert_eq!(s.chosen.len(), n + 1, "a unit change returns the profile");
    assert_eq!(s.picker.unit(), Some("ane"));
    let m2 = s.chosen.last().cloned().expect("profile");
    let ane = reprice(&est, &m2, s.picker.unit()).expect("reprice on ane");
    assert_eq!(ane.unit, "ane");
    let gpu = reprice(&est, &m2, None).expect("reprice on gpu");
    assert_ne!(ane.sums().latency_s, gpu.sums().latency_s);
}

#[test]
fn profile_files_load_or_show_their_error_inline() {
    let d = scratch("device");
    let mut h = harness();

    // A missing file: the error is shown, the previous profile stays.
    let missing = d.join("missing.toml").display().to_string();
    load_path(&mut h, &missing);
    let s = h.state();
    assert!(s.chosen.is_empty());
    let err = s.picker.error().expect("error kept").to_string();
    assert!(err.contains("missing.toml"), "{err}");
    assert_eq!(
        s.picker.profile().map(|p| p.name.as_str()),
        Some("apple-m2")
    );
    h.get_by_label(&format!("Error: {err}"));

    // A malformed profile (a required field removed): error names the file.
    let (_, m2_text) = BUILTIN
        .iter()
        .find(|b| b.0 == "apple-m2")
        .copied()
        .expect("apple-m2 built in");
    let broken = d.join("broken.toml");
    std::fs::write(&broken, m2_text.replace("default_unit", "default_unitx")).expect("write");
    let field = h.get_by_label("Profile file:");
    field.focus();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.run();
    load_path(&mut h, &broken.display().to_string());
    let err = h.state().picker.error().expect("error").to_string();
    assert!(err.contains("broken.toml"), "{err}");
    assert!(h.state().chosen.is_empty());

    // Malformed JSON.
    let bad_json = d.join("bad.json");
    std::fs::write(&bad_json, "{\"name\": 3").expect("write");
    let field = h.get_by_label("Profile file:");
    field.focus();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.run();
    load_path(&mut h, &bad_json.display().to_string());
    let err = h.state().picker.error().expect("error").to_string();
    assert!(err.contains("bad.json"), "{err}");

    // A good file (a shipped profile renamed) loads and is returned.
    let good = d.join("my-device.toml");
    let x86 = BUILTIN
        .iter()
        .find(|b| b.0 == "x86-avx512")
        .map(|b| b.1)
        .expect("x86 built in");
    std::fs::write(
        &good,
        x86.replacen("name = \"x86-avx512\"", "name = \"my-device\"", 1),
    )
    .expect("write");
    let field = h.get_by_label("Profile file:");
    field.focus();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.run();
    load_path(&mut h, &good.display().to_string());
    let s = h.state();
    assert!(s.picker.error().is_none(), "{:?}", s.picker.error());
    let p = s.chosen.last().expect("returned");
    assert_eq!(p.name, "my-device");
    assert_eq!(
        s.picker.source(),
        &ProfileSource::File(good.display().to_string())
    );
    let _ = std::fs::remove_dir_all(&d);
}
