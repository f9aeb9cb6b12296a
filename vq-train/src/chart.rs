//! Line charts written as PNG and SVG (plotters, with a vendored DejaVu Sans font so no system
//! font library is needed) plus the CSV of the plotted data: training curves (`vqd train`'s
//! `loss.png`) and the figure format of every study in `experiments`. Feature `charts`.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::io;
use crate::{Error, Result, write_atomic};

fn plot_error(e: impl std::fmt::Debug) -> Error {
    Error::InvalidSetting(format!("chart: {e:?}"))
}

static FONT: Once = Once::new();
const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the vendored font as plotters' `sans-serif` (once; for any plotters drawing).
pub fn register_font() {
    FONT.call_once(|| {
        // Registration only fails for an unparsable font, which the vendored one is not.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT_BYTES);
    });
}

/// One named curve.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// `(x, y)` points.
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// Curves.
    pub series: Vec<Series>,
    /// Plot y on a log scale.
    pub log_y: bool,
}

const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(255, 187, 120),
];

impl LineChart {
    fn ranges(&self) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
        let points = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in points {
            if !y.is_finite() || (self.log_y && y <= 0.0) {
                continue;
            }
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 >= x1 {
            x1 = x0 + 1.0;
        }
        if self.log_y {
            (x0..x1, y0.max(1e-12)..(y1 * 1.5))
        } else {
            let pad = ((y1 - y0) * 0.05).max(1e-9);
            (x0..x1, (y0 - pad)..(y1 + pad))
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        register_font();
        root.fill(&WHITE).map_err(plot_error)?;
        let (xr, yr) = self.ranges();
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(&self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64);
        macro_rules! body {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(self.x_label.as_str())
                    .y_desc(self.y_label.as_str())
                    .label_style(("sans-serif", 13))
                    .draw()
                    .map_err(plot_error)?;
                for (i, s) in self.series.iter().enumerate() {
                    let colour = PALETTE[i % PALETTE.len()];
                    let points: Vec<(f64, f64)> = s
                        .points
                        .iter()
                        .copied()
                        .filter(|(_, y)| y.is_finite() && (!self.log_y || *y > 0.0))
                        .collect();
                    // Markers too, so single-point series (a baseline) are visible.
                    chart
                        .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                        .map_err(plot_error)?;
                    chart
                        .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                        .map_err(plot_error)?
                        .label(s.label.as_str())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                        });
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 13))
                    .draw()
                    .map_err(plot_error)?;
            }};
        }
        if self.log_y {
            body!(
                builder
                    .build_cartesian_2d(xr, yr.log_scale())
                    .map_err(plot_error)?
            );
        } else {
            body!(builder.build_cartesian_2d(xr, yr).map_err(plot_error)?);
        }
        root.present().map_err(plot_error)?;
        Ok(())
    }

    /// Writes `<dir>/<stem>.png`, `<stem>.svg` and `<stem>.csv`; returns the PNG path.
    pub fn save(&self, dir: &Path, stem: &str) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let (w, h) = (900u32, 560u32);
        let mut buffer = vec![0u8; (w * h * 3) as usize];
        self.draw(BitMapBackend::with_buffer(&mut buffer, (w, h)).into_drawing_area())?;
        let png = dir.join(format!("{stem}.png"));
        let image = image::RgbImage::from_raw(w, h, buffer).expect("the buffer is w × h × 3");
        let mut bytes = Vec::new();
        image
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .map_err(|e| Error::Data {
                path: png.clone(),
                reason: e.to_string(),
            })?;
        write_atomic(&png, &bytes)?;
        self.draw(SVGBackend::new(&dir.join(format!("{stem}.svg")), (w, h)).into_drawing_area())?;
        let mut csv = String::from("series,x,y\n");
        for s in &self.series {
            for (x, y) in &s.points {
                csv.push_str(&format!("{},{x},{y}\n", s.label.replace(',', ";")));
            }
        }
        write_atomic(&dir.join(format!("{stem}.csv")), csv.as_bytes())?;
        Ok(png)
    }
}
