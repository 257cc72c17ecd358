//! Figures (plotters, PNG and SVG): line charts of one or more named series.
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: Once = Once::new();

/// ab_glyph needs a registered font; DejaVu Sans comes from the `dejavu` crate.
fn register_font() {
    FONT.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| panic!("the bundled DejaVu font is valid"));
    });
}

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// (x, min, max) over seeds, drawn as a shaded band behind the line; empty for none.
    pub band: Vec<(f64, f64, f64)>,
    /// Colour family: series of one architecture share a hue.
    pub color: usize,
    /// Shade within the family (lighter as it grows), so configurations of one architecture
    /// stay apart.
    pub shade: usize,
    /// Line style: 0 solid, then dashed, dotted, long-dashed (the swept setting).
    pub dash: usize,
}

impl Series {
    /// A plain line, coloured by its position.
    pub fn line(name: String, points: Vec<(f64, f64)>, i: usize) -> Self {
        Self { name, points, band: vec![], color: i, shade: 0, dash: 0 }
    }
}

pub struct Figure<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    /// The x values are log2 of what the axis shows: ticks at whole powers, labelled 2^x.
    pub x_log2: bool,
    /// Whole-number x ticks (optimizer steps).
    pub x_integer: bool,
    pub y_label: &'a str,
    /// A log-scale y axis (for losses spanning several-fold).
    pub y_log: bool,
    pub series: &'a [Series],
}

/// Plot size in pixels; the legend adds rows below it.
const WIDTH: u32 = 1100;
const PLOT_HEIGHT: u32 = 560;
const LEGEND_COLUMNS: usize = 2;
const LEGEND_ROW: u32 = 20;

/// Writes `<stem>.png` and `<stem>.svg`.
pub fn line_chart(dir: &Path, stem: &str, fig: &Figure) -> anyhow::Result<()> {
    register_font();
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    let rows = fig.series.len().div_ceil(LEGEND_COLUMNS) as u32;
    let size = (WIDTH, PLOT_HEIGHT + 16 + rows * LEGEND_ROW);
    draw(BitMapBackend::new(&png, size).into_drawing_area(), fig)?;
    draw(SVGBackend::new(&svg, size).into_drawing_area(), fig)?;
    Ok(())
}

/// Round values between `lo` and `hi` (> 0) for a log axis: the coarsest of the 1-2-5, 1-1.5-2-3-...
/// and finer ladders that gives at least five ticks, so the axis reads 2, 2.5, 3, 4, 5, 6 rather
/// than e-powers.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    const LADDERS: [&[f64]; 4] = [
        &[1.0, 2.0, 5.0],
        &[1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0],
        &[1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0],
        &[1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.2, 2.4, 2.6, 2.8, 3.0, 3.25, 3.5, 3.75, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5],
    ];
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return vec![];
    }
    let mut best = vec![];
    for ladder in LADDERS {
        let mut ticks = vec![];
        let mut decade = 10f64.powf(lo.log10().floor());
        while decade <= hi {
            for m in ladder {
                let v = (m * decade * 1e6).round() / 1e6;
                if v >= lo && v <= hi {
                    ticks.push(v);
                }
            }
            decade *= 10.0;
        }
        best = ticks;
        if best.len() >= 5 {
            break;
        }
    }
    best
}

/// A tick value without trailing zeros: 2, 2.5, 0.125.
fn tick_label(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// A family's hue (mixers red, Llamas blue, GPT green, transfixer purple, autoencoders orange
/// and teal), darker for the first configuration, lighter for later ones.
fn color(family: usize, shade: usize) -> RGBAColor {
    const HUES: [f64; 8] = [0.0, 0.60, 0.33, 0.78, 0.08, 0.48, 0.9, 0.15];
    let l = 0.30 + 0.11 * (shade % 4) as f64;
    HSLColor(HUES[family % HUES.len()], 0.75, l).to_rgba()
}

/// (dash length, gap) in pixels of a line style; `None` is solid.
fn dash(i: usize) -> Option<(u32, u32)> {
    [None, Some((9, 5)), Some((2, 4)), Some((16, 6))][i % 4]
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, plotters::coord::Shift>, fig: &Figure) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    // The legend has its own rows below the plot, so it never covers the data nor takes width.
    let (area, legend) = root.split_vertically(PLOT_HEIGHT);
    let ty = |y: f64| if fig.y_log { y.ln() } else { y };
    let finite = |p: &(f64, f64)| p.1.is_finite() && (!fig.y_log || p.1 > 0.0);
    let mut ys: Vec<f64> = fig.series.iter().flat_map(|s| s.points.iter().filter(|p| finite(p)).map(|p| ty(p.1))).collect();
    ys.extend(fig.series.iter().flat_map(|s| s.band.iter().filter(|b| !fig.y_log || b.1 > 0.0).flat_map(|b| [ty(b.1), ty(b.2)])));
    let xs: Vec<f64> = fig.series.iter().flat_map(|s| s.points.iter().filter(|p| finite(p)).map(|p| p.0)).collect();
    let fold = |v: &[f64]| v.iter().filter(|x| x.is_finite()).fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let ((mut x0, mut x1), (mut y0, mut y1)) = (fold(&xs), fold(&ys));
    if x0 > x1 || y0 > y1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let pad = ((y1 - y0) * 0.05).max(1e-3);
    let mut chart = ChartBuilder::on(&area)
        .caption(fig.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1.max(x0 + 1e-9), (y0 - pad)..(y1 + pad))
        .map_err(err)?;
    let pow2 = |x: &f64| format!("{}", 2f64.powf(*x).round());
    let whole = |x: &f64| format!("{}", x.round() as i64);
    let y_desc = if fig.y_log { format!("{} (log scale)", fig.y_label) } else { fig.y_label.to_string() };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(fig.x_label).y_desc(y_desc).label_style(("sans-serif", 14));
    if fig.x_log2 {
        mesh.x_labels(((x1 - x0).round() as usize + 1).max(2)).x_label_formatter(&pow2);
    } else if fig.x_integer {
        mesh.x_label_formatter(&whole);
    }
    // A log axis is ticked by hand at round values (plotters would tick round logarithms).
    let ticks = if fig.y_log { log_ticks((y0 - pad).exp(), (y1 + pad).exp()) } else { vec![] };
    if fig.y_log {
        mesh.y_labels(0).disable_y_mesh();
    }
    mesh.draw().map_err(err)?;
    for v in &ticks {
        let y = v.ln();
        chart.draw_series(std::iter::once(PathElement::new(vec![(x0, y), (x1.max(x0 + 1e-9), y)], RGBColor(225, 225, 225).stroke_width(1)))).map_err(err)?;
        let (px, py) = chart.backend_coord(&(x0, y));
        area.draw(&Text::new(tick_label(*v), (px - 8, py), TextStyle::from(("sans-serif", 14).into_font()).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Right,
            plotters::style::text_anchor::VPos::Center,
        ))))
        .map_err(err)?;
    }
    for s in fig.series {
        if s.band.len() > 1 {
            let mut poly: Vec<(f64, f64)> = s.band.iter().map(|b| (b.0, ty(b.2))).collect();
            poly.extend(s.band.iter().rev().map(|b| (b.0, ty(b.1))));
            let poly: Vec<(f64, f64)> = poly.into_iter().filter(|p| p.1.is_finite()).collect();
            chart.draw_series(std::iter::once(Polygon::new(poly, color(s.color, s.shade).mix(0.15).filled()))).map_err(err)?;
        }
    }
    for s in fig.series {
        let c = color(s.color, s.shade);
        let points: Vec<(f64, f64)> = s.points.iter().copied().filter(|p| finite(p)).map(|p| (p.0, ty(p.1))).collect();
        match dash(s.dash) {
            None => chart.draw_series(LineSeries::new(points.clone(), c.stroke_width(2))).map(|_| ()),
            Some((d, g)) => chart.draw_series(DashedLineSeries::new(points.clone(), d, g, c.stroke_width(2))).map(|_| ()),
        }
        .map_err(err)?;
        if points.len() <= 12 {
            chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, c.filled()))).map_err(err)?;
        }
    }
    // The legend rows: a line sample in each series' style, then its name, in columns.
    let column = (WIDTH as usize - 80) / LEGEND_COLUMNS;
    let size = 13;
    let chars = (column - 50) / 7;
    for (i, s) in fig.series.iter().enumerate() {
        let (col, row) = (i % LEGEND_COLUMNS, i / LEGEND_COLUMNS);
        let (x, y) = (80 + (col * column) as i32, 12 + row as i32 * LEGEND_ROW as i32);
        let c = color(s.color, s.shade);
        let sample = vec![(x, y), (x + 30, y)];
        match dash(s.dash) {
            None => legend.draw(&PathElement::new(sample, c.stroke_width(2))),
            Some((d, g)) => legend.draw(&plotters::element::DashedPathElement::new(sample, d.min(8), g.min(4), c.stroke_width(2))),
        }
        .map_err(err)?;
        let name: String = if s.name.chars().count() > chars { s.name.chars().take(chars - 1).chain(std::iter::once('…')).collect() } else { s.name.clone() };
        legend.draw(&Text::new(name, (x + 36, y - size / 2 - 1), ("sans-serif", size))).map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Grouped bars: one group of bars per category (a model configuration), one bar per series
/// (a side or a device), coloured by the series.
pub struct Bars<'a> {
    pub title: &'a str,
    pub y_label: &'a str,
    pub categories: &'a [String],
    /// (series name, one value per category; `None`: no bar).
    pub series: &'a [(String, Vec<Option<f64>>)],
}

/// Writes `<stem>.png` and `<stem>.svg`.
pub fn bar_chart(dir: &Path, stem: &str, bars: &Bars) -> anyhow::Result<()> {
    register_font();
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    draw_bars(BitMapBackend::new(&png, (1100, 600)).into_drawing_area(), bars)?;
    draw_bars(SVGBackend::new(&svg, (1100, 600)).into_drawing_area(), bars)?;
    Ok(())
}

fn draw_bars<DB: DrawingBackend>(root: DrawingArea<DB, plotters::coord::Shift>, bars: &Bars) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let (area, legend) = root.split_horizontally(800);
    let n = bars.categories.len().max(1);
    let top = bars.series.iter().flat_map(|(_, v)| v.iter().flatten()).copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
    let top = if top > 0.0 { top * 1.08 } else { 1.0 };
    let mut chart = ChartBuilder::on(&area)
        .caption(bars.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(110)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)
        .map_err(err)?;
    let names = bars.categories.to_vec();
    let label = move |x: &f64| {
        let i = x.floor() as usize;
        if (x - x.floor() - 0.5).abs() < 1e-6 { names.get(i).cloned().unwrap_or_default() } else { String::new() }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2 * n + 1)
        .x_label_formatter(&label)
        .x_label_style(("sans-serif", 12).into_font().transform(FontTransform::Rotate90))
        .y_desc(bars.y_label)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    let k = bars.series.len().max(1) as f64;
    let width = 0.8 / k;
    for (j, (_, values)) in bars.series.iter().enumerate() {
        let c = color(j, 0);
        chart
            .draw_series(values.iter().enumerate().filter_map(|(i, v)| {
                let v = v.filter(|v| v.is_finite())?;
                let x0 = i as f64 + 0.1 + j as f64 * width;
                Some(Rectangle::new([(x0, 0.0), (x0 + width * 0.92, v)], c.filled()))
            }))
            .map_err(err)?;
    }
    for (j, (name, _)) in bars.series.iter().enumerate() {
        let y = 40 + j as i32 * 22;
        legend.draw(&Rectangle::new([(4, y - 6), (28, y + 6)], color(j, 0).filled())).map_err(err)?;
        legend.draw(&Text::new(name.clone(), (36, y - 8), ("sans-serif", 14))).map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_are_round_values() {
        assert_eq!(log_ticks(1.9, 7.2), vec![2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(log_ticks(2.3, 3.1), vec![2.4, 2.6, 2.8, 3.0], "the finest ladder when none gives five");
        assert_eq!(log_ticks(0.8, 30.0), vec![1.0, 2.0, 5.0, 10.0, 20.0]);
        assert_eq!(log_ticks(0.4, 7.0), vec![0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert!(log_ticks(3.0, 3.0).is_empty());
        assert_eq!(tick_label(2.5), "2.5");
        assert_eq!(tick_label(3.0), "3");
    }
}
