//! The sample runs of one part (pure): each sample lasts until the next
//! one's decode time, the first starts at the part's tfdt, the last ends at
//! the part's end. Used by the segmenter for every track it writes.

use std::time::Instant;

use bytes::Bytes;

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
/// `start` (the part's tfdt) and the last ends at `end`, or one tick after
/// its decode time if `end` is not past it. A decode time at or before the
/// one before it (a part that starts later than its first frame, under a
/// publisher whose frames come irregularly) moves one tick past it, so every
/// duration is positive and they add up to the returned end exactly.
/// Presentation times are kept: a moved decode time moves the composition
/// offset the other way.
pub(super) fn to_samples(frames: &[Pending], start: i64, end: i64) -> (Vec<Sample>, i64) {
    let mut dts = Vec::with_capacity(frames.len());
    for f in frames {
        dts.push(match dts.last() {
            None => start,
            Some(&prev) => f.dts.max(prev + 1),
        });
    }
    let end = dts.last().map_or(end, |&last| end.max(last + 1));
    let samples = frames
        .iter()
        .zip(&dts)
        .enumerate()
        .map(|(i, (f, &d))| {
            let next = dts.get(i + 1).copied().unwrap_or(end);
            Sample {
                duration: (next - d).clamp(1, u32::MAX as i64) as u32,
                cts_offset: (f.pts - d).clamp(i32::MIN as i64, i32::MAX as i64) as i32,
                sync: f.sync,
                data: f.data.clone(),
            }
        })
        .collect();
    (samples, end)
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
        let (s, end) = to_samples(&frames, 3000, 9000);
        assert_eq!((s[0].duration, s[0].cts_offset), (3000, 6010));
        assert_eq!((s[1].duration, s[1].cts_offset), (3000, 0));
        assert_eq!(end, 9000);
    }

    fn frame(dts: i64) -> Pending {
        Pending {
            dts,
            pts: dts + 6000,
            sync: false,
            data: Bytes::from_static(b"v"),
            received: Instant::now(),
        }
    }

    #[test]
    fn a_part_that_starts_past_its_first_frames_keeps_every_duration_positive_and_gapless() {
        // The previous part ended at 5000 (its end estimated one frame on),
        // but the next frames came 1,900 ticks apart (GStreamer's live
        // timestamps do this): two of them decode before the part's start.
        let frames = [frame(3800), frame(4700), frame(6600)];
        let (s, end) = to_samples(&frames, 5000, 8000);
        let durations: Vec<u32> = s.iter().map(|x| x.duration).collect();
        assert_eq!(durations, vec![1, 1599, 1400]);
        assert_eq!(end, 8000);
        assert_eq!(durations.iter().sum::<u32>() as i64, end - 5000);
        // Presentation times stay where the publisher put them.
        assert_eq!(s[0].cts_offset, 3800 + 6000 - 5000);
        assert_eq!(s[1].cts_offset, 4700 + 6000 - 5001);
    }

    #[test]
    fn an_end_before_the_last_frame_moves_past_it() {
        let (s, end) = to_samples(&[frame(0), frame(3000)], 0, 2000);
        assert_eq!(end, 3001);
        assert_eq!(s.iter().map(|x| x.duration).collect::<Vec<_>>(), [3000, 1]);
    }
}
