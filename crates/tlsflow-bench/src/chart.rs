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

/// scaling.png: the busy part of the scaling measure, one line per contender over the
/// connection counts: round trips per second (left), CPU per GiB (middle) and the 99th
/// percentile latency (right). Does nothing when the scaling measure did not run.
pub(crate) fn draw_scaling(results: &Results, path: &Path) -> Outcome<()> {
    let Some(scaling) = &results.scaling else {
        return Ok(());
    };
    let names: Vec<&str> = contender::ALL
        .iter()
        .map(|c| c.name)
        .filter(|name| {
            scaling
                .busy
                .iter()
                .any(|p| p.contender == *name && !p.samples.is_empty())
        })
        .collect();
    if names.is_empty() {
        eprintln!("no scaling figures: {} not drawn", path.display());
        return Ok(());
    }
    register_fonts()?;
    render_scaling(scaling, &names, path)
        .map_err(|e| Failure::io(format!("cannot draw {}: {e}", path.display())))
}

/// Line colours, one per contender.
const LINES: [RGBColor; 6] = [
    RGBColor(0x88, 0x88, 0x88),
    RGBColor(0x4c, 0x78, 0xa8),
    RGBColor(0xb2, 0x79, 0xa2),
    RGBColor(0xf5, 0x85, 0x18),
    RGBColor(0x54, 0xa2, 0x4b),
    RGBColor(0xe4, 0x57, 0x56),
];

type Figure = fn(&crate::scaling::BusySample) -> f64;

/// One contender's line: its name, colour and (connections, figure) points.
type Line<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

fn render_scaling(
    scaling: &crate::scaling::Scaling,
    names: &[&str],
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(path, (1500, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(50);
    title.draw(&Text::new(
        "Scaling: 1 KiB request/response on a multi-thread tokio runtime (median of runs)",
        (16, 14),
        (FONT, 22).into_font(),
    ))?;
    let panels = body.split_evenly((1, 3));
    let figures: [(&str, Figure, bool); 3] = [
        (
            "round trips/s, all connections",
            |x| x.round_trips_per_s,
            false,
        ),
        ("CPU-s per GiB (both ends)", |x| x.cpu_s_per_gib, false),
        ("p99 latency, µs", |x| x.p99_us, true),
    ];
    for (k, (panel, (label, figure, log_y))) in panels.iter().zip(figures).enumerate() {
        let lines: Vec<Line<'_>> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let points = crate::scaling::BUSY
                    .iter()
                    .filter_map(|&count| {
                        let point = scaling.point(name, count)?;
                        Some((f64::from(count), point.summary(figure)?.median))
                    })
                    .collect();
                (*name, LINES[i % LINES.len()], points)
            })
            .collect();
        let top = lines
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|&(_, y)| y))
            .fold(1.0, f64::max);
        let bottom = lines
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|&(_, y)| y))
            .fold(f64::INFINITY, f64::min)
            .max(1.0);
        let mut builder = ChartBuilder::on(panel);
        builder
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .caption(label, (FONT, 17));
        let x = (0.7f64..1500.0).log_scale();
        macro_rules! draw_lines {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc("connections")
                    .x_label_formatter(&|v| format!("{v:.0}"))
                    .y_label_formatter(&|v| crate::report::thousands(*v))
                    .label_style((FONT, 13))
                    .axis_desc_style((FONT, 14))
                    .draw()?;
                for (name, color, points) in &lines {
                    let color = *color;
                    let series = chart.draw_series(LineSeries::new(
                        points.iter().copied(),
                        color.stroke_width(2),
                    ))?;
                    if k == 0 {
                        series.label(*name).legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                        });
                    }
                    chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
                }
                if k == 0 {
                    chart
                        .configure_series_labels()
                        .position(SeriesLabelPosition::LowerRight)
                        .label_font((FONT, 13))
                        .background_style(WHITE.mix(0.9))
                        .border_style(BLACK)
                        .draw()?;
                }
            }};
        }
        if log_y {
            draw_lines!(builder.build_cartesian_2d(x, (bottom * 0.7..top * 1.4).log_scale())?);
        } else {
            draw_lines!(builder.build_cartesian_2d(x, 0.0..top * 1.15)?);
        }
    }
    root.present()?;
    Ok(())
}
