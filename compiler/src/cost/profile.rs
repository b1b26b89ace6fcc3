//! Device profiles: peak throughput per dtype, memory bandwidth per level, launch overhead,
//! energy per op and per byte, and achievable fractions of peak per op class.
//!
//! Profiles are TOML data. The shipped ones (`compiler/profiles/*.toml`) are embedded in the
//! binary with `include_str!`, so `--device apple-m2` works from any folder; any other profile
//! is loaded by path (`--device ./my-phone.toml`). Every number is a `{ value, source }` pair:
//! the source names the public document the number comes from, or starts with `estimate:` and
//! says how it was estimated. [`DeviceProfile::validate`] rejects a missing source, a
//! non-positive throughput, bandwidth or energy, and fractions outside `(0, 1]`, naming the file
//! and the field.

use super::CostError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The shipped profiles: (name, TOML text).
pub const BUILTIN: [(&str, &str); 5] = [
    (
        "apple-a17-pro",
        include_str!("../../profiles/apple-a17-pro.toml"),
    ),
    ("apple-m2", include_str!("../../profiles/apple-m2.toml")),
    (
        "apple-m3-max",
        include_str!("../../profiles/apple-m3-max.toml"),
    ),
    ("x86-avx512", include_str!("../../profiles/x86-avx512.toml")),
    ("host", include_str!("../../profiles/host.toml")),
];

/// Names of the shipped profiles.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|b| b.0).collect()
}

/// A number and the public source it comes from.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sourced {
    pub value: f64,
    /// Where the number comes from (a spec page, a review, a paper), or `estimate: ...`.
    pub source: String,
}

/// Achievable fractions of peak compute and of memory bandwidth for one op class.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fraction {
    pub compute: f64,
    pub memory: f64,
    pub source: String,
}

/// One memory level.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryLevel {
    pub bandwidth_bytes_per_s: Sourced,
    pub energy_pj_per_byte: Sourced,
    /// Capacity (on-chip level only): an op whose activations fit are served from it.
    #[serde(default)]
    pub capacity_bytes: Option<Sourced>,
}

/// The memory hierarchy the cost model uses: DRAM and one on-chip level (SLC / L2 / LLC).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    pub dram: MemoryLevel,
    pub onchip: MemoryLevel,
}

/// Achievable fractions for every op class ([`super::work::OpClass`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Achievable {
    pub matmul: Fraction,
    pub conv: Fraction,
    pub attention: Fraction,
    pub elementwise: Fraction,
    pub normalization: Fraction,
    pub reduction: Fraction,
    pub data_movement: Fraction,
    pub other: Fraction,
}

/// A compute unit (GPU, Neural Engine, CPU cores).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    #[serde(default)]
    pub summary: String,
    /// Per-kernel (per-op) dispatch overhead in seconds.
    pub launch_overhead_s: Sourced,
    /// Peak operations per second by compute precision (`f32`, `f16`, `bf16`, `int8`, `int4`);
    /// one FLOP = one multiply or one add, so a MAC is two.
    pub peak_ops_per_s: BTreeMap<String, Sourced>,
    /// Energy per operation (pJ) by compute precision; must cover every key of `peak_ops_per_s`.
    pub energy_pj_per_op: BTreeMap<String, Sourced>,
    pub achievable: Achievable,
}

/// A device profile.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceProfile {
    pub name: String,
    #[serde(default)]
    pub summary: String,
    /// The unit used unless another is asked for.
    pub default_unit: String,
    pub memory: Memory,
    pub units: BTreeMap<String, Unit>,
}

/// Compute precisions a profile may list, narrowest first.
pub const PRECISIONS: [&str; 5] = ["int4", "int8", "f16", "bf16", "f32"];

impl DeviceProfile {
    /// Parses and validates a profile; `origin` (a file path or `built-in NAME`) names it in
    /// errors.
    pub fn parse(text: &str, origin: &str) -> Result<DeviceProfile, CostError> {
        let p: DeviceProfile = toml::from_str(text).map_err(|e| CostError::Profile {
            origin: origin.to_string(),
            msg: e.message().to_string()
                + &e.span()
                    .map(|s| {
                        let (n, line) = line_of(text, s.start);
                        format!(" (at line {n}: {line})")
                    })
                    .unwrap_or_default(),
        })?;
        p.validate(origin)?;
        Ok(p)
    }

    /// A shipped profile by name, or a profile file by path (`.toml`, or any path that exists).
    /// `host` is the profile `petasos calibrate` wrote ([`calibrated_host_path`]) when there is
    /// one, else the shipped placeholder.
    pub fn load(name_or_path: &str) -> Result<DeviceProfile, CostError> {
        if name_or_path == "host" {
            if let Some(p) = calibrated_host_path().filter(|p| p.is_file()) {
                let origin = p.display().to_string();
                let text = std::fs::read_to_string(&p).map_err(|e| CostError::Io {
                    path: origin.clone(),
                    source: e,
                })?;
                return DeviceProfile::parse(&text, &origin);
            }
        }
        if let Some((n, text)) = BUILTIN.iter().find(|b| b.0 == name_or_path) {
            return DeviceProfile::parse(text, &format!("built-in profile {n}"));
        }
        let path = Path::new(name_or_path);
        if path.exists() || name_or_path.ends_with(".toml") {
            let text = std::fs::read_to_string(path).map_err(|e| CostError::Io {
                path: name_or_path.to_string(),
                source: e,
            })?;
            return DeviceProfile::parse(&text, name_or_path);
        }
        Err(CostError::UnknownDevice {
            name: name_or_path.to_string(),
            known: builtin_names().join(", "),
        })
    }

    /// The unit called `name` (the default unit when `None`).
    pub fn unit(&self, name: Option<&str>) -> Result<(&str, &Unit), CostError> {
        let want = name.unwrap_or(&self.default_unit);
        self.units
            .get_key_value(want)
            .map(|(k, u)| (k.as_str(), u))
            .ok_or_else(|| CostError::UnknownUnit {
                profile: self.name.clone(),
                unit: want.to_string(),
                known: self.units.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// Checks every field: sources present, throughputs, bandwidths and energies positive and
    /// finite, fractions in `(0, 1]`, precision keys known, energy given for every peak.
    pub fn validate(&self, origin: &str) -> Result<(), CostError> {
        let err = |field: &str, msg: &str| CostError::Profile {
            origin: origin.to_string(),
            msg: format!("field `{field}`: {msg}"),
        };
        let pos = |field: &str, s: &Sourced| -> Result<(), CostError> {
            if !(s.value.is_finite() && s.value > 0.0) {
                return Err(err(
                    field,
                    &format!("must be positive and finite, got {}", s.value),
                ));
            }
            if s.source.trim().is_empty() {
                return Err(err(field, "has no source"));
            }
            Ok(())
        };
        if self.name.trim().is_empty() {
            return Err(err("name", "is empty"));
        }
        for (lvl, m) in [("dram", &self.memory.dram), ("onchip", &self.memory.onchip)] {
            pos(
                &format!("memory.{lvl}.bandwidth_bytes_per_s"),
                &m.bandwidth_bytes_per_s,
            )?;
            pos(
                &format!("memory.{lvl}.energy_pj_per_byte"),
                &m.energy_pj_per_byte,
            )?;
            if let Some(c) = &m.capacity_bytes {
                pos(&format!("memory.{lvl}.capacity_bytes"), c)?;
            }
        }
        if self.memory.onchip.capacity_bytes.is_none() {
            return Err(err("memory.onchip.capacity_bytes", "is missing"));
        }
        if self.units.is_empty() {
            return Err(err("units", "no compute unit is defined"));
        }
        if !self.units.contains_key(&self.default_unit) {
            return Err(err(
                "default_unit",
                &format!("names no unit ('{}')", self.default_unit),
            ));
        }
        for (un, u) in &self.units {
            let f = |rest: &str| format!("units.{un}.{rest}");
            pos(&f("launch_overhead_s"), &u.launch_overhead_s)?;
            if u.peak_ops_per_s.is_empty() {
                return Err(err(&f("peak_ops_per_s"), "lists no precision"));
            }
            for (k, s) in &u.peak_ops_per_s {
                if !PRECISIONS.contains(&k.as_str()) {
                    return Err(err(
                        &f(&format!("peak_ops_per_s.{k}")),
                        &format!("unknown precision (known: {})", PRECISIONS.join(", ")),
                    ));
                }
                pos(&f(&format!("peak_ops_per_s.{k}")), s)?;
                let e = u
                    .energy_pj_per_op
                    .get(k)
                    .ok_or_else(|| err(&f(&format!("energy_pj_per_op.{k}")), "is missing"))?;
                pos(&f(&format!("energy_pj_per_op.{k}")), e)?;
            }
            let a = &u.achievable;
            for (c, fr) in [
                ("matmul", &a.matmul),
                ("conv", &a.conv),
                ("attention", &a.attention),
                ("elementwise", &a.elementwise),
                ("normalization", &a.normalization),
                ("reduction", &a.reduction),
                ("data_movement", &a.data_movement),
                ("other", &a.other),
            ] {
                for (which, v) in [("compute", fr.compute), ("memory", fr.memory)] {
                    if !(v > 0.0 && v <= 1.0) {
                        return Err(err(
                            &f(&format!("achievable.{c}.{which}")),
                            &format!("must be in (0, 1], got {v}"),
                        ));
                    }
                }
                if fr.source.trim().is_empty() {
                    return Err(err(&f(&format!("achievable.{c}")), "has no source"));
                }
            }
        }
        Ok(())
    }
}

impl Unit {
    /// The precision key used for a computation wanted at `want`: `want` itself when listed,
    /// else the nearest wider one listed (int4 -> int8 -> f16 -> bf16 -> f32; `bf16` and `f16`
    /// stand in for each other first), else the widest narrower one (a unit without f32, like a
    /// Neural Engine, runs f32 graphs in f16).
    pub fn precision(&self, want: &str) -> &str {
        let pick = |k: &str| {
            self.peak_ops_per_s
                .get_key_value(k)
                .map(|(k, _)| k.as_str())
        };
        let twin = match want {
            "f16" => Some("bf16"),
            "bf16" => Some("f16"),
            _ => None,
        };
        if let Some(k) = pick(want).or_else(|| twin.and_then(pick)) {
            return k;
        }
        let i = PRECISIONS.iter().position(|p| *p == want).unwrap_or(4);
        PRECISIONS[i..]
            .iter()
            .chain(PRECISIONS[..i].iter().rev())
            .find_map(|p| pick(p))
            // Validation guarantees at least one precision.
            .or_else(|| self.peak_ops_per_s.keys().next().map(|k| k.as_str()))
            .unwrap_or("f32")
    }
}

fn line_of(text: &str, byte: usize) -> (usize, String) {
    let upto = text.get(..byte.min(text.len())).unwrap_or("");
    let n = upto.matches('\n').count() + 1;
    let line: String = text
        .lines()
        .nth(n - 1)
        .unwrap_or("")
        .trim()
        .chars()
        .take(60)
        .collect();
    (n, line)
}

/// Where `petasos calibrate` writes the measured `host` profile by default and where
/// `--device host` looks for it: `$PETASOS_HOME/host.toml`, else
/// `$XDG_CONFIG_HOME/petasos/host.toml`, else `~/.config/petasos/host.toml`.
pub fn calibrated_host_path() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    if let Some(h) = std::env::var_os("PETASOS_HOME") {
        return Some(PathBuf::from(h).join("host.toml"));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("petasos").join("host.toml"))
}
