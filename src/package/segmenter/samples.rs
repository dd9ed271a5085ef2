//! The sample runs of one part (pure): each sample lasts until the next
//! one's decode time, the first starts at the part's tfdt, the last ends at
//! the part's end. Used by the segmenter for every track it writes.

use std::time::Instant;

use bytes::Bytes;

use crate::media::aac::SAMPLES_PER_FRAME;
use crate::package::boxes::Sample;

/// A frame waiting for its part to close, on the rendition's timeline.
pub(super) struct Pending {
    pub dts: i64,
    pub pts: i64,
    pub sync: bool,
    pub data: Bytes,
    pub received: Instant,
}

/// Lead samples with durations from each next DTS; the first is decoded at
/// `start` (the part's tfdt) and the last ends at `end`. Presentation times
/// are kept: a moved decode time moves the composition offset the other way.
pub(super) fn to_samples(frames: &[Pending], start: i64, end: i64) -> Vec<Sample> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let dts = if i == 0 { start } else { f.dts };
            let next = frames.get(i + 1).map_or(end, |n| n.dts);
            Sample {
                duration: (next - dts).clamp(1, u32::MAX as i64) as u32,
                cts_offset: (f.pts - dts).clamp(i32::MIN as i64, i32::MAX as i64) as i32,
                sync: f.sync,
                data: f.data.clone(),
            }
        })
        .collect()
}

/// AAC samples: 1024 each unless the next frame says otherwise (a gap).
pub(super) fn audio_run(frames: &[Pending], following: Option<i64>) -> Vec<Sample> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let next = frames.get(i + 1).map(|n| n.dts).or(following);
            let duration = next.map_or(SAMPLES_PER_FRAME, |n| {
                (n - f.dts).clamp(1, 4 * SAMPLES_PER_FRAME)
            });
            Sample {
                duration: duration as u32,
                cts_offset: 0,
                sync: true,
                data: f.data.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_a_parts_first_decode_time_keeps_its_presentation_time() {
        let frames = [
            Pending {
                dts: 3010,
                pts: 9010,
                sync: true,
                data: Bytes::from_static(b"v"),
                received: Instant::now(),
            },
            Pending {
                dts: 6000,
                pts: 6000,
                sync: false,
                data: Bytes::from_static(b"v"),
                received: Instant::now(),
            },
        ];
        let s = to_samples(&frames, 3000, 9000);
        assert_eq!((s[0].duration, s[0].cts_offset), (3000, 6010));
        assert_eq!((s[1].duration, s[1].cts_offset), (3000, 0));
    }
}
