//! The dialog's icon, drawn in code (no image file to ship): a white arrow
//! rising in a blue rounded square.

use eframe::egui;

/// The icon's side in pixels: sharp as a window icon and at 48 points on a
/// 2× screen.
const SIZE: usize = 128;

/// updraft's update icon as RGBA pixels, for
/// [`egui::ViewportBuilder::with_icon`] and the dialog's header.
pub fn update_icon() -> egui::IconData {
    let mut rgba = Vec::with_capacity(SIZE * SIZE * 4);
    for y in 0..SIZE {
        for x in 0..SIZE {
            #[allow(clippy::cast_precision_loss)] // SIZE is small
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            rgba.extend_from_slice(&pixel(px, py));
        }
    }
    let side = u32::try_from(SIZE).unwrap_or(u32::MAX);
    egui::IconData {
        rgba,
        width: side,
        height: side,
    }
}

/// The icon as an egui image, for drawing it.
pub(crate) fn icon_image(icon: &egui::IconData) -> egui::ColorImage {
    let size = [
        usize::try_from(icon.width).unwrap_or(0),
        usize::try_from(icon.height).unwrap_or(0),
    ];
    egui::ColorImage::from_rgba_unmultiplied(size, &icon.rgba)
}

/// How much of a pixel a shape at signed distance `distance` (pixels,
/// negative inside) covers: a one-pixel soft edge.
fn coverage(distance: f32) -> f32 {
    (0.5 - distance).clamp(0.0, 1.0)
}

fn rounded_box(px: f32, py: f32, center: [f32; 2], half: [f32; 2], radius: f32) -> f32 {
    let qx = (px - center[0]).abs() - half[0] + radius;
    let qy = (py - center[1]).abs() - half[1] + radius;
    let outside = qx.max(0.0).hypot(qy.max(0.0));
    outside + qx.max(qy).min(0.0) - radius
}

/// Distance to the side of the line a→b that is to its right (outside,
/// for a shape traced clockwise on screen).
fn half_plane(px: f32, py: f32, a: [f32; 2], b: [f32; 2]) -> f32 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let length = dx.hypot(dy);
    ((px - a[0]) * dy - (py - a[1]) * dx) / length
}

fn pixel(px: f32, py: f32) -> [u8; 4] {
    let square = coverage(rounded_box(px, py, [64.0, 64.0], [60.0, 60.0], 26.0));
    if square <= 0.0 {
        return [0; 4];
    }
    // A vertical gradient, lighter at the top.
    let t = py / 128.0;
    let blue = [
        lerp(0x4c, 0x1d, t),
        lerp(0x8d, 0x4e, t),
        lerp(0xf6, 0xd8, t),
    ];
    let (apex, left, right) = ([64.0, 24.0], [30.0, 62.0], [98.0, 62.0]);
    let head = half_plane(px, py, left, apex)
        .max(half_plane(px, py, apex, right))
        .max(half_plane(px, py, right, left));
    let stem = rounded_box(px, py, [64.0, 80.0], [12.0, 22.0], 3.0);
    let bar = rounded_box(px, py, [64.0, 110.0], [30.0, 4.5], 4.5);
    let white = coverage(head.min(stem).min(bar));
    let mix = |channel: f32| lerp_u8(channel, 255.0, white);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 0..=255
    let alpha = (square * 255.0).round() as u8;
    [mix(blue[0]), mix(blue[1]), mix(blue[2]), alpha]
}

fn lerp(from: u8, to: u8, t: f32) -> f32 {
    f32::from(from) + (f32::from(to) - f32::from(from)) * t.clamp(0.0, 1.0)
}

fn lerp_u8(from: f32, to: f32, t: f32) -> u8 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 0..=255
    let value = (from + (to - from) * t).round().clamp(0.0, 255.0) as u8;
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_icon_is_a_blue_square_with_a_white_arrow_and_clear_corners() {
        let icon = update_icon();
        assert_eq!((icon.width, icon.height), (128, 128));
        assert_eq!(icon.rgba.len(), 128 * 128 * 4);
        let at = |x: usize, y: usize| {
            let i = (y * 128 + x) * 4;
            [
                icon.rgba[i],
                icon.rgba[i + 1],
                icon.rgba[i + 2],
                icon.rgba[i + 3],
            ]
        };
        assert_eq!(at(1, 1)[3], 0, "the corner is transparent");
        let [r, g, b, a] = at(20, 64);
        assert!(
            a == 255 && b > 200 && r < 100 && g < 160,
            "blue at the side"
        );
        assert_eq!(at(64, 40), [255, 255, 255, 255], "white in the arrow head");
        assert_eq!(at(64, 85), [255, 255, 255, 255], "white in the stem");
    }
}
