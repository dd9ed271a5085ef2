//! Ladder planning (pure): the source's size and the configured rungs in,
//! the rungs to encode out. Never upscales; keeps the aspect ratio; even sizes.

use crate::config::RungConfig;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rung {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Bits per second.
    pub bitrate: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Highest first.
    pub rungs: Vec<Rung>,
    /// Configured rungs left out because they are taller than the source.
    pub skipped: Vec<String>,
}

/// `num / den` rounded to the nearest even number (at least 2).
fn nearest_even(num: u64, den: u64) -> u32 {
    (((num + den) / (2 * den)) * 2).max(2) as u32
}

/// The rungs for a `width` x `height` source.
pub fn plan(width: u32, height: u32, configured: &[RungConfig]) -> Plan {
    let mut rungs = Vec::new();
    let mut skipped = Vec::new();
    let mut sorted: Vec<&RungConfig> = configured.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.height));
    for r in sorted {
        if r.height > height || width == 0 || height == 0 {
            skipped.push(r.name.clone());
            continue;
        }
        rungs.push(Rung {
            name: r.name.clone(),
            width: nearest_even(width as u64 * r.height as u64, height as u64),
            height: nearest_even(r.height as u64, 1),
            bitrate: r.bitrate_kbps as u64 * 1000,
        });
    }
    Plan { rungs, skipped }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TranscodeConfig;

    fn names(p: &Plan) -> Vec<(&str, u32, u32)> {
        p.rungs
            .iter()
            .map(|r| (r.name.as_str(), r.width, r.height))
            .collect()
    }

    #[test]
    fn default_ladder_from_720p_skips_1080p() {
        let p = plan(1280, 720, &TranscodeConfig::default().rungs);
        assert_eq!(
            names(&p),
            vec![("720p", 1280, 720), ("480p", 854, 480), ("360p", 640, 360)]
        );
        assert_eq!(p.skipped, vec!["1080p".to_string()]);
        assert_eq!(p.rungs[0].bitrate, 3_000_000);
    }

    #[test]
    fn four_by_three_and_odd_sizes_stay_even() {
        let p = plan(1440, 1080, &TranscodeConfig::default().rungs);
        assert_eq!(
            names(&p),
            vec![
                ("1080p", 1440, 1080),
                ("720p", 960, 720),
                ("480p", 640, 480),
                ("360p", 480, 360)
            ]
        );
        let p = plan(1000, 563, &TranscodeConfig::default().rungs);
        assert!(p
            .rungs
            .iter()
            .all(|r| r.width % 2 == 0 && r.height % 2 == 0));
        assert_eq!(names(&p)[0], ("480p", 852, 480));
    }

    #[test]
    fn a_small_source_gets_no_rung() {
        let p = plan(320, 240, &TranscodeConfig::default().rungs);
        assert!(p.rungs.is_empty());
        assert_eq!(p.skipped.len(), 4);
    }
}
