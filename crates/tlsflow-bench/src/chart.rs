//! throughput.png: one-way throughput per contender, one bar per write size (16 KiB and
//! 256 KiB by default) side by side, median bars with min–max whiskers. Text is drawn in
//! DejaVu Sans, embedded in the program, so no system font is needed.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use crate::cli::Measure;
use crate::contender;
use crate::failure::{Failure, Outcome};
use crate::report::bytes;
use crate::results::{Results, Table};
use crate::stats::Summary;

const FONT: &str = "sans-serif";

/// Bar colours, one per write size.
const PALETTE: [RGBColor; 4] = [
    RGBColor(0x4c, 0x78, 0xa8),
    RGBColor(0xf5, 0x85, 0x18),
    RGBColor(0x54, 0xa2, 0x4b),
    RGBColor(0xb2, 0x79, 0xa2),
];

fn register_fonts() -> Outcome<()> {
    static FONTS: Once = Once::new();
    let mut result = Ok(());
    FONTS.call_once(|| {
        for (style, bytes) in [
            (FontStyle::Normal, dejavu::sans::regular()),
            (FontStyle::Bold, dejavu::sans::bold()),
        ] {
            if plotters::style::register_font(FONT, style, bytes).is_err() {
                result = Err(Failure::io("the embedded DejaVu Sans font is unreadable"));
            }
        }
    });
    result
}

/// Draws the chart into `path`; does nothing when the one-way measure did not run.
pub(crate) fn draw(results: &Results, path: &Path) -> Outcome<()> {
    // One series per one-way table, smallest write first (16 KiB and 256 KiB by default).
    let series: Vec<(&Table, RGBColor, String)> = results
        .tables
        .iter()
        .filter(|t| t.measure == Measure::Oneway)
        .zip(PALETTE.iter().cycle())
        .map(|(table, &color)| {
            let label = table
                .parameter
                .map_or_else(|| table.id.clone(), |w| format!("{} writes", bytes(w)));
            (table, color, label)
        })
        .collect();
    let names: Vec<&str> = contender::ALL
        .iter()
        .map(|c| c.name)
        .filter(|name| series.iter().any(|(t, _, _)| t.row(name).is_some()))
        .collect();
    if names.is_empty() {
        eprintln!("no one-way figures: {} not drawn", path.display());
        return Ok(());
    }
    register_fonts()?;
    render(&series, &names, path)
        .map_err(|e| Failure::io(format!("cannot draw {}: {e}", path.display())))
}

fn render(
    series: &[(&Table, RGBColor, String)],
    names: &[&str],
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let n = names.len();
    let xmax = series
        .iter()
        .flat_map(|(t, _, _)| t.rows.iter().filter_map(Summary::value))
        .map(|s| s.max)
        .fold(1.0, f64::max)
        * 1.3;
    let height = 150 + 44 * n as u32;
    let root = BitMapBackend::new(path, (1200, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "One-way throughput over loopback, TLS 1.3 AES-128-GCM (median, min–max)",
            (FONT, 22),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(240)
        .build_cartesian_2d(0.0..xmax, 0.0..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("MB/s (10^6 bytes per second)")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 16))
        .draw()?;
    // The contenders' names, right-aligned left of the plot; the first one at the top.
    let name_style =
        TextStyle::from((FONT, 15).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, name) in names.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(0.0, (n - 1 - i) as f64 + 0.5));
        root.draw(&Text::new(*name, (x - 8, y), name_style.clone()))?;
    }
    let band = 0.76 / series.len() as f64;
    for (k, (table, color, label)) in series.iter().enumerate() {
        let bars: Vec<(f64, f64, Summary)> = names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let summary = table.row(name).and_then(Summary::value)?;
                // The first series on top within each contender's slot.
                let bottom = (n - 1 - i) as f64 + 0.12 + band * (series.len() - 1 - k) as f64;
                Some((bottom, bottom + band, summary))
            })
            .collect();
        chart
            .draw_series(bars.iter().map(|&(lo, hi, s)| {
                Rectangle::new([(0.0, lo + 0.02), (s.median, hi - 0.02)], color.filled())
            }))?
            .label(label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
        let whisker = BLACK.stroke_width(1);
        for &(lo, hi, s) in &bars {
            let mid = (lo + hi) / 2.0;
            let cap = band * 0.25;
            chart.draw_series([
                PathElement::new(vec![(s.min, mid), (s.max, mid)], whisker),
                PathElement::new(vec![(s.min, mid - cap), (s.min, mid + cap)], whisker),
                PathElement::new(vec![(s.max, mid - cap), (s.max, mid + cap)], whisker),
            ])?;
            let style =
                TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
            chart.draw_series([Text::new(
                crate::report::thousands(s.median),
                (s.max + xmax * 0.008, mid),
                style,
            )])?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
