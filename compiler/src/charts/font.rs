//! The embedded chart font: registered with plotters' `ab_glyph` text support (used for text
//! measurement and SVG text) and parsed once for the PNG glyph renderer in `glyphs`.
//!
//! plotters looks fonts up by family name in a process-wide table; without a registered font
//! every text operation fails. Registering DejaVu Sans (compiled into the binary) means charts
//! never depend on system fonts or fontconfig.

use std::sync::OnceLock;

use ab_glyph::FontRef;
use plotters::style::{register_font, FontStyle};

/// DejaVu Sans 2.37 (Bitstream Vera license; see `compiler/assets/fonts/`).
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers the embedded font under [`super::FONT`] and `sans-serif` (plotters' default
/// family) once per process; later calls return the first call's outcome. Errors only if the
/// embedded font cannot be parsed.
pub(super) fn ensure_registered() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            for family in [super::FONT, "sans-serif"] {
                register_font(family, FontStyle::Normal, DEJAVU_SANS)
                    .map_err(|_| "the embedded DejaVu Sans font could not be parsed".to_string())?;
            }
            Ok(())
        })
        .clone()
}

/// The embedded font, parsed once; `None` only if it cannot be parsed (then
/// [`ensure_registered`] has already failed, so no chart gets this far).
pub(super) fn dejavu_sans() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(DEJAVU_SANS).ok())
        .as_ref()
}
