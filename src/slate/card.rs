//! The built-in slate card, drawn as planar YUV 4:2:0 (pure): seven 75 %
//! colour bars over the top two thirds, a dark band below. Shown when
//! `slate.image` is not set; a viewer sees at once that the picture is a
//! stand-in, not a frozen frame of the programme.

/// One picture as three planes, no padding: Y is `width × height`, U and V
/// are `ceil(width/2) × ceil(height/2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planes {
    pub width: u32,
    pub height: u32,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

/// 75 % bars in BT.601 limited range (Y, Cb, Cr): white, yellow, cyan,
/// green, magenta, red, blue.
pub const BARS: [(u8, u8, u8); 7] = [
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
];

/// The band under the bars: near black.
pub const BAND: (u8, u8, u8) = (32, 128, 128);

/// The colour of the card at (`x`, `y`) for a `width × height` picture.
pub fn colour_at(x: u32, y: u32, width: u32, height: u32) -> (u8, u8, u8) {
    if y * 3 >= height.max(1) * 2 {
        return BAND;
    }
    let bar = (x as u64 * BARS.len() as u64 / width.max(1) as u64) as usize;
    BARS[bar.min(BARS.len() - 1)]
}

/// The card at `width × height`.
pub fn card(width: u32, height: u32) -> Planes {
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    let mut y = Vec::with_capacity((width * height) as usize);
    for row in 0..height {
        for col in 0..width {
            y.push(colour_at(col, row, width, height).0);
        }
    }
    let (mut u, mut v) = (Vec::new(), Vec::new());
    for row in 0..ch {
        for col in 0..cw {
            // The chroma sample covers (2col, 2row) and its neighbours.
            let (_, cb, cr) = colour_at(col * 2, row * 2, width, height);
            u.push(cb);
            v.push(cr);
        }
    }
    Planes {
        width,
        height,
        y,
        u,
        v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_is_seven_bars_over_a_dark_band() {
        let c = card(14, 6);
        assert_eq!((c.y.len(), c.u.len(), c.v.len()), (84, 21, 21));
        // Top row: two pixels per bar, in order.
        let top: Vec<u8> = c.y[..14].to_vec();
        let want: Vec<u8> = BARS.iter().flat_map(|b| [b.0, b.0]).collect();
        assert_eq!(top, want);
        // Rows 4 and 5 (the last third) are the band.
        assert!(c.y[4 * 14..].iter().all(|&p| p == BAND.0));
        // Chroma: first row of samples is the bars' Cb, the last the band's.
        let cb: Vec<u8> = BARS.iter().map(|b| b.1).collect();
        assert_eq!(&c.u[..7], &cb[..]);
        assert!(c.u[14..].iter().all(|&p| p == BAND.1));
    }

    #[test]
    fn odd_sizes_round_the_chroma_planes_up() {
        let c = card(5, 3);
        assert_eq!((c.y.len(), c.u.len()), (15, 6));
        assert_eq!(colour_at(4, 0, 5, 3), BARS[5]);
        assert_eq!(colour_at(0, 2, 5, 3), BAND);
    }
}
