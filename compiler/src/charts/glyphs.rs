//! A drawing-backend wrapper that renders text with correctly placed glyphs.
//!
//! plotters' own `ab_glyph` text path places each glyph by its bounding box rather than its
//! pen position (dropping side bearings) and truncates the baseline offset, so bitmap text
//! comes out with uneven letter spacing and raised punctuation ("3·81 ms"). [`GlyphText`]
//! forwards everything to the wrapped backend except `estimate_text_size`, which it
//! implements with `ab_glyph` directly, and, for pixel backends, `draw_text`: pen-positioned,
//! kerned glyphs on a common baseline, anti-aliased by coverage, honouring the style's anchor,
//! colour and rotation. Vector backends (SVG) keep their own `draw_text` (a `<text>` element)
//! and only share the measurement, so PNG and SVG charts get the same layout.
//!
//! Text size follows plotters' SVG convention: a style of size `s` has an em of `s / 1.24`
//! pixels, so PNG and SVG charts show text at the same size.

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

/// Wraps a pixel backend and replaces its text rendering (see the module docs).
pub(super) struct GlyphText<B> {
    inner: B,
    font: &'static FontRef<'static>,
    /// Draw text as glyph pixels (pixel backends) rather than through the inner backend.
    rasterize: bool,
}

impl<B> GlyphText<B> {
    /// Wraps a pixel backend: text is measured and drawn with `font`.
    pub(super) fn pixels(inner: B, font: &'static FontRef<'static>) -> Self {
        GlyphText {
            inner,
            font,
            rasterize: true,
        }
    }

    /// Wraps a vector backend: text is measured with `font` and drawn by `inner`.
    pub(super) fn vector(inner: B, font: &'static FontRef<'static>) -> Self {
        GlyphText {
            inner,
            font,
            rasterize: false,
        }
    }

    /// The ab_glyph scale for a plotters text size (em = size / 1.24 px, as in SVG output).
    fn scale(&self, size: f64) -> PxScale {
        let em = (size / 1.24) as f32;
        let units = self.font.units_per_em().unwrap_or(2048.0);
        PxScale::from(em * self.font.height_unscaled() / units)
    }

    /// (advance width, line height, ascent) of `text` at `size`, in pixels.
    fn measure(&self, text: &str, size: f64) -> (f32, f32, f32) {
        let font = self.font.as_scaled(self.scale(size));
        let mut width = 0.0f32;
        let mut prev = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                width += font.kern(p, id);
            }
            width += font.h_advance(id);
            prev = Some(id);
        }
        (width, font.ascent() - font.descent(), font.ascent())
    }
}

impl<B: DrawingBackend> DrawingBackend for GlyphText<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let (w, h, _) = self.measure(text, style.size());
        Ok((w.ceil() as u32, h.ceil() as u32))
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        if !self.rasterize {
            return self.inner.draw_text(text, style, pos);
        }
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let (width, height, ascent) = self.measure(text, style.size());
        // Offset of the text box's top-left corner from the anchor, before rotation.
        let dx = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -width / 2.0,
            HPos::Right => -width,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0.0,
            VPos::Center => -height / 2.0,
            VPos::Bottom => -height,
        };
        let trans = style.transform();
        let scale = self.scale(style.size());
        let font = self.font.as_scaled(scale);
        let mut pen = dx;
        let mut prev = None;
        let mut pixels = Vec::new();
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                pen += font.kern(p, id);
            }
            let glyph = id.with_scale_and_position(scale, point(pen, dy + ascent));
            if let Some(outline) = self.font.outline_glyph(glyph) {
                let b = outline.px_bounds();
                outline.draw(|x, y, coverage| {
                    if coverage > 0.0 {
                        let gx = b.min.x as i32 + x as i32;
                        let gy = b.min.y as i32 + y as i32;
                        pixels.push((gx, gy, coverage.min(1.0)));
                    }
                });
            }
            pen += font.h_advance(id);
            prev = Some(id);
        }
        for (x, y, coverage) in pixels {
            let (tx, ty) = trans.transform(x, y);
            self.inner.draw_pixel(
                (pos.0 + tx, pos.1 + ty),
                BackendColor {
                    alpha: color.alpha * f64::from(coverage),
                    rgb: color.rgb,
                },
            )?;
        }
        Ok(())
    }
}
