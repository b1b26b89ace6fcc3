//! The device picker: a combo of the built-in device profiles, a combo of the chosen profile's
//! compute units, and a path field to load a profile file (TOML, as `petasos estimate --device
//! FILE` reads, or the same fields as JSON). Load errors are shown inline; the previous profile
//! stays chosen.
//!
//! The picker only chooses; the caller re-prices with [`reprice`] (or `Estimator::new` on a
//! clone of the existing `GraphWork`), so the graph's work is never recomputed.

use petasos_compiler::cost::profile::builtin_names;
use petasos_compiler::cost::{CostError, DeviceProfile, Estimator};
use std::path::Path;

/// Where the chosen profile came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProfileSource {
    /// A shipped profile, by name.
    Builtin(String),
    /// A file, by path.
    File(String),
}

/// The device picker's state.
pub struct DevicePicker {
    source: ProfileSource,
    profile: Option<DeviceProfile>,
    unit: Option<String>,
    path: String,
    error: Option<String>,
}

impl Default for DevicePicker {
    fn default() -> Self {
        DevicePicker::new("apple-m2")
    }
}

/// Loads a profile file: `.json` files as JSON (the TOML schema's fields), anything else as TOML.
pub fn load_profile_file(path: &str) -> Result<DeviceProfile, CostError> {
    let p = Path::new(path);
    let is_json = p
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if !is_json {
        if !p.exists() {
            return Err(CostError::Io {
                path: path.to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        return DeviceProfile::load(path);
    }
    let text = std::fs::read_to_string(p).map_err(|e| CostError::Io {
        path: path.to_string(),
        source: e,
    })?;
    let prof: DeviceProfile = serde_json::from_str(&text).map_err(|e| CostError::Profile {
        origin: path.to_string(),
        msg: e.to_string(),
    })?;
    prof.validate(path)?;
    Ok(prof)
}

/// A new estimator for `est`'s work on `profile` (unit `unit`, the default when `None`) with
/// `est`'s whole-model and per-op what-if options: the work is cloned, not recomputed.
pub fn reprice(
    est: &Estimator,
    profile: &DeviceProfile,
    unit: Option<&str>,
) -> Result<Estimator, CostError> {
    let mut e = Estimator::new(est.work.clone(), profile, unit, est.what_if())?;
    for i in 0..est.work.ops.len() {
        if let Some(o) = est.op_options(i) {
            e.set_op_options(i, Some(o));
        }
    }
    Ok(e)
}

impl DevicePicker {
    /// A picker starting on built-in profile `name` (when it fails to load, no profile is
    /// chosen and the error is shown).
    pub fn new(name: &str) -> DevicePicker {
        let mut p = DevicePicker {
            source: ProfileSource::Builtin(name.to_string()),
            profile: None,
            unit: None,
            path: String::new(),
            error: None,
        };
        match DeviceProfile::load(name) {
            Ok(prof) => p.profile = Some(prof),
            Err(e) => p.error = Some(e.to_string()),
        }
        p
    }

    /// The chosen profile.
    pub fn profile(&self) -> Option<&DeviceProfile> {
        self.profile.as_ref()
    }

    /// The chosen unit (`None`: the profile's default unit).
    pub fn unit(&self) -> Option<&str> {
        self.unit.as_deref()
    }

    /// Where the chosen profile came from.
    pub fn source(&self) -> &ProfileSource {
        &self.source
    }

    /// The last load error, if the last attempt failed.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Chooses built-in profile `name` (unit reset to its default). Returns the profile, or
    /// keeps the previous one and records the error.
    pub fn choose_builtin(&mut self, name: &str) -> Option<DeviceProfile> {
        self.adopt(
            DeviceProfile::load(name),
            ProfileSource::Builtin(name.to_string()),
        )
    }

    /// Loads the profile file at `path` (see [`load_profile_file`]).
    pub fn choose_file(&mut self, path: &str) -> Option<DeviceProfile> {
        let path = path.trim().to_string();
        self.adopt(load_profile_file(&path), ProfileSource::File(path.clone()))
    }

    fn adopt(
        &mut self,
        r: Result<DeviceProfile, CostError>,
        source: ProfileSource,
    ) -> Option<DeviceProfile> {
        match r {
            Ok(p) => {
                self.error = None;
                self.unit = None;
                self.source = source;
                self.profile = Some(p.clone());
                Some(p)
            }
            Err(e) => {
                self.error = Some(e.to_string());
                None
            }
        }
    }

    /// Draws the picker. Returns the profile when the user chose another profile or another
    /// unit (read the unit with [`DevicePicker::unit`]); the caller re-prices.
    pub fn show(&mut self, ui: &mut egui::Ui) -> Option<DeviceProfile> {
        let mut chosen = None;
        ui.horizontal(|ui| {
            let current = match &self.source {
                ProfileSource::Builtin(n) => n.clone(),
                ProfileSource::File(p) => format!("file: {p}"),
            };
            let mut pick: Option<&'static str> = None;
            egui::ComboBox::from_label("Device")
                .selected_text(current)
                .show_ui(ui, |ui| {
                    for name in builtin_names() {
                        let on = self.source == ProfileSource::Builtin(name.to_string());
                        if ui.selectable_label(on, name).clicked() && !on {
                            pick = Some(name);
                        }
                    }
                });
            if let Some(name) = pick {
                chosen = self.choose_builtin(name);
            }
            if let Some(prof) = &self.profile {
                let units: Vec<String> = prof.units.keys().cloned().collect();
                let default_unit = prof.default_unit.clone();
                let shown = self.unit.clone().unwrap_or_else(|| default_unit.clone());
                let mut new_unit: Option<String> = None;
                egui::ComboBox::from_label("Unit")
                    .selected_text(shown.clone())
                    .show_ui(ui, |ui| {
                        for u in &units {
                            let label = if *u == default_unit {
                                format!("{u} (default)")
                            } else {
                                u.clone()
                            };
                            if ui.selectable_label(*u == shown, label).clicked() && *u != shown {
                                new_unit = Some(u.clone());
                            }
                        }
                    });
                if let Some(u) = new_unit {
                    self.unit = (u != default_unit).then_some(u);
                    chosen = Some(prof.clone());
                }
            }
        });
        ui.horizontal(|ui| {
            let label = ui.label("Profile file:");
            let edit = ui
                .add(
                    egui::TextEdit::singleline(&mut self.path)
                        .hint_text("path/to/device.toml or .json")
                        .desired_width(260.0),
                )
                .labelled_by(label.id);
            let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let load = ui
                .add_enabled(
                    !self.path.trim().is_empty(),
                    egui::Button::new("Load profile"),
                )
                .clicked();
            if (enter || load) && !self.path.trim().is_empty() {
                let path = self.path.clone();
                if let Some(p) = self.choose_file(&path) {
                    chosen = Some(p);
                }
            }
        });
        if let Some(e) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, format!("Error: {e}"));
        } else if let Some(p) = &self.profile {
            if !p.summary.is_empty() {
                ui.weak(&p.summary);
            }
        }
        chosen
    }
}
