//! `synack demo NAME --svg FILE` for every scenario: the SVG ladder is rendered to pixels
//! (with resvg, as a browser would) and must be a picture of plausible size with a fair
//! share of ink: the two time lines, the arrows and their labels.

mod common;
use common::scenarios;
use std::process::Command;

#[test]
fn every_scenarios_svg_ladder_renders_to_a_plausible_png() {
    let mut fonts = resvg::usvg::fontdb::Database::new();
    fonts.load_system_fonts();
    fonts.set_monospace_family("DejaVu Sans Mono");
    assert!(
        fonts.faces().next().is_some(),
        "no system fonts to draw the labels with (apt-get install fonts-dejavu-core)"
    );
    let options = resvg::usvg::Options {
        fontdb: std::sync::Arc::new(fonts),
        ..resvg::usvg::Options::default()
    };
    let names = scenarios();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        let path = std::env::temp_dir().join(format!("synack-{}-{name}.svg", std::process::id()));
        let out = Command::new(env!("CARGO_BIN_EXE_synack"))
            .args(["demo", name, "--svg"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "demo {name} --svg failed");
        let svg = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let tree = resvg::usvg::Tree::from_data(&svg, &options)
            .unwrap_or_else(|e| panic!("{name}: not valid SVG: {e}"));
        let size = tree.size().to_int_size();
        assert!(
            size.width() >= 600 && size.height() >= 150,
            "{name}: {size:?}"
        );
        let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
        resvg::render(
            &tree,
            resvg::tiny_skia::Transform::default(),
            &mut pixmap.as_mut(),
        );
        let ink = pixmap
            .pixels()
            .iter()
            .filter(|p| p.red() < 200 || p.green() < 200 || p.blue() < 200)
            .count();
        let share = ink as f64 / (size.width() * size.height()) as f64;
        eprintln!("{name}: {:.2} % ink", share * 100.0);
        assert!(
            (0.005..0.5).contains(&share),
            "{name}: {:.2} % of the picture is ink",
            share * 100.0
        );
        let png = pixmap.encode_png().unwrap();
        assert!(png.len() > 5_000, "{name}: PNG of {} bytes", png.len());
        // SYNACK_KEEP_PNG=DIR keeps the renders, to look at them.
        if let Some(dir) = std::env::var_os("SYNACK_KEEP_PNG") {
            std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), &png).unwrap();
        }
    }
}
