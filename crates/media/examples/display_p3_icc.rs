//! Writes a Display P3 ICC profile (D65, P3 primaries, the sRGB curve) to
//! the file given, made with lcms2: bench/variants.sh tags a photograph
//! with it to have a wide-gamut JPEG as phones make them.
//!
//!   cargo run -p tintype-media --example display_p3_icc -- p3.icc

use lcms2::{CIExyY, CIExyYTRIPLE, Profile, ToneCurve};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: display_p3_icc OUT.icc")?;
    let xyy = |x: f64, y: f64| CIExyY { x, y, Y: 1.0 };
    let primaries = CIExyYTRIPLE {
        Red: xyy(0.680, 0.320),
        Green: xyy(0.265, 0.690),
        Blue: xyy(0.150, 0.060),
    };
    let curve =
        ToneCurve::new_parametric(4, &[2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045])?;
    let profile = Profile::new_rgb(&xyy(0.3127, 0.3290), &primaries, &[&curve, &curve, &curve])?;
    std::fs::write(path, profile.icc()?)?;
    Ok(())
}
