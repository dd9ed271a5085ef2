//! A slate clip played in a loop on the wall clock (pure): which of its
//! frames are due, with timestamps that carry on from one pass to the next.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clip::Clip;
use crate::media::aac::SAMPLES_PER_FRAME;
use crate::media::{rescale, AccessUnit, TrackKind, VIDEO_TIMESCALE};

pub struct Feed {
    clip: Arc<Clip>,
    start: Instant,
    /// Video frames handed out so far (the clip's GOP, looped).
    video: u64,
    /// Audio frames handed out so far (1,024 samples each, looped).
    audio: u64,
}

impl Feed {
    /// The clip, its first frames due at `start`.
    pub fn new(clip: Arc<Clip>, start: Instant) -> Feed {
        Feed {
            clip,
            start,
            video: 0,
            audio: 0,
        }
    }

    /// How long the slate has been on at `now`.
    pub fn shown(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.start)
    }

    /// When the next frame (of either track) is due.
    pub fn next_due(&self) -> Instant {
        [self.video_next(), self.audio_next()]
            .into_iter()
            .flatten()
            .map(|(_, at)| at)
            .min()
            .unwrap_or(self.start + Duration::from_secs(3600))
    }

    /// Every frame due by `now`, in time order, each stamped as received
    /// when it was due (a feed that starts in the past hands out the frames
    /// it owes at once, as if they had arrived on time).
    pub fn due(&mut self, now: Instant) -> Vec<AccessUnit> {
        let mut out = Vec::new();
        loop {
            let v = self.video_next().filter(|(_, at)| *at <= now);
            let a = self.audio_next().filter(|(_, at)| *at <= now);
            let (mut au, at) = match (v, a) {
                (Some((v, tv)), Some((_, ta))) if tv <= ta => {
                    self.video += 1;
                    (v, tv)
                }
                (Some((v, tv)), None) => {
                    self.video += 1;
                    (v, tv)
                }
                (_, Some((a, ta))) => {
                    self.audio += 1;
                    (a, ta)
                }
                (None, None) => return out,
            };
            au.received = at;
            out.push(au);
        }
    }

    /// The next video frame, with its timestamps, and when it is due.
    fn video_next(&self) -> Option<(AccessUnit, Instant)> {
        let len = self.clip.video.len() as u64;
        let f = self.clip.video.get((self.video % len.max(1)) as usize)?;
        let shift = (self.video / len) as i64 * self.clip.video_duration;
        let au = AccessUnit {
            track: TrackKind::Video,
            dts: f.dts + shift,
            pts: f.pts + shift,
            keyframe: f.keyframe,
            data: f.data.clone(),
            received: self.start,
        };
        let at = self.at(au.dts, VIDEO_TIMESCALE);
        Some((au, at))
    }

    fn audio_next(&self) -> Option<(AccessUnit, Instant)> {
        let len = self.clip.audio.len() as u64;
        let data = self.clip.audio.get((self.audio % len.max(1)) as usize)?;
        let pts = self.audio as i64 * SAMPLES_PER_FRAME;
        let au = AccessUnit::audio(pts, data.clone(), self.start);
        let at = self.at(pts, self.clip.audio_rate);
        Some((au, at))
    }

    fn at(&self, ticks: i64, timescale: u32) -> Instant {
        let micros = rescale(ticks.max(0), timescale, 1_000_000);
        self.start + Duration::from_micros(micros as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::MediaInfo;
    use bytes::Bytes;

    fn clip() -> Arc<Clip> {
        // Three frames at 10 fps (9,000 ticks apart), the first a keyframe;
        // audio at 10,240 Hz (one frame every 0.1 s), two frames.
        let video = (0..3)
            .map(|i| super::super::clip::ClipFrame {
                pts: i * 9000,
                dts: i * 9000,
                keyframe: i == 0,
                data: Bytes::from(vec![i as u8]),
            })
            .collect();
        Arc::new(Clip {
            info: MediaInfo {
                video: None,
                audio: None,
                declared_bitrate: None,
            },
            video,
            video_duration: 27_000,
            audio: vec![Bytes::from_static(b"a0"), Bytes::from_static(b"a1")],
            audio_rate: 10_240,
        })
    }

    #[test]
    fn frames_come_due_on_the_wall_clock_and_loop_with_growing_timestamps() {
        let t0 = Instant::now();
        let mut feed = Feed::new(clip(), t0);
        // At the start: the first video and the first audio frame.
        let first = feed.due(t0);
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].track, TrackKind::Video);
        assert_eq!(feed.next_due(), t0 + Duration::from_millis(100));
        // 0.65 s later: video frames 1..=6 (a loop and a bit), audio 1..=6.
        let later = feed.due(t0 + Duration::from_millis(650));
        let video: Vec<(i64, bool, u8)> = later
            .iter()
            .filter(|a| a.track == TrackKind::Video)
            .map(|a| (a.pts, a.keyframe, a.data[0]))
            .collect();
        assert_eq!(
            video,
            [
                (9000, false, 1),
                (18000, false, 2),
                (27000, true, 0),
                (36000, false, 1),
                (45000, false, 2),
                (54000, true, 0)
            ]
        );
        let audio: Vec<i64> = later
            .iter()
            .filter(|a| a.track == TrackKind::Audio)
            .map(|a| a.pts)
            .collect();
        assert_eq!(audio, [1024, 2048, 3072, 4096, 5120, 6144]);
        assert_eq!(&later[1].data[..], b"a1", "audio loops over its frames");
        // Each stamped as received when it was due.
        assert_eq!(later[0].received, t0 + Duration::from_millis(100));
        assert_eq!(later[11].received, t0 + Duration::from_millis(600));
        assert_eq!(
            feed.shown(t0 + Duration::from_secs(2)),
            Duration::from_secs(2)
        );
    }
}
