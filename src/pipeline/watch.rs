//! What the pipeline knows of one input of a stream (primary or backup):
//! its tracks, when it last sent, since when it delivers, and, while it is
//! not served, its recent frames.
//!
//! Pure: frames and instants in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::splice::Splice;
use crate::media::{AccessUnit, MediaInfo, TrackKind};

/// Frames of a waiting input held (about 8 s at 30 fps with audio): past it
/// a GOP is too long to start from, and the frames are let go.
const HELD_FRAMES: usize = 600;
/// Frames of a waiting audio-only input held (about 3 s at 48 kHz).
const HELD_AUDIO_ONLY: usize = 150;

#[derive(Default)]
pub(super) struct Watch {
    pub info: Option<Arc<MediaInfo>>,
    /// When it last sent something.
    pub last: Option<Instant>,
    /// Since when it has delivered with no silence past `failover_after`.
    pub since: Option<Instant>,
    /// While not served: its frames from the keyframe before its last one
    /// on (two GOPs: a splice looks there for the frames last served, which
    /// may be older than its last keyframe).
    held: Vec<AccessUnit>,
    /// Where its last keyframe is in `held`.
    key: usize,
    /// While served after a seamless switch: how its frames continue the
    /// served timeline.
    pub splice: Option<Splice>,
}

impl Watch {
    pub fn heard(&mut self, now: Instant, failover_after: Duration) {
        if self
            .last
            .is_none_or(|t| now.duration_since(t) > failover_after)
        {
            self.since = Some(now);
        }
        self.last = Some(now);
    }

    /// Delivering now, with a keyframe to start from.
    pub fn ready(&self, now: Instant, failover_after: Duration) -> bool {
        self.info.is_some()
            && !self.held.is_empty()
            && self
                .last
                .is_some_and(|t| now.duration_since(t) < failover_after)
    }

    /// Hold `au` while the input waits. A video keyframe lets go of the
    /// GOP before the previous one; frames before the first keyframe are
    /// not held. A stream without video keeps its last frames.
    pub fn hold(&mut self, au: AccessUnit) {
        let has_video = self.info.as_ref().is_some_and(|i| i.video.is_some());
        if !has_video {
            if self.held.len() >= HELD_AUDIO_ONLY {
                self.held.remove(0);
            }
            self.key = 0;
            self.held.push(au);
            return;
        }
        if au.track == TrackKind::Video && au.keyframe {
            self.held.drain(..self.key);
            self.key = self.held.len();
        } else if self.held.is_empty() {
            return;
        }
        if self.held.len() >= HELD_FRAMES {
            self.clear();
            return;
        }
        self.held.push(au);
    }

    /// Nothing held (new tracks: what was held is of an older session).
    pub fn clear(&mut self) {
        self.held.clear();
        self.key = 0;
    }

    /// Everything held (where a splice looks).
    pub fn held(&self) -> &[AccessUnit] {
        &self.held
    }

    /// Its last keyframe came just now: nothing held after it yet.
    pub fn at_keyframe(&self) -> bool {
        self.held.len() == self.key + 1
    }

    /// Take what is held: all of it (`from_keyframe` false: a splice skips
    /// what was served), or from its last keyframe on.
    pub fn take(&mut self, from_keyframe: bool) -> Vec<AccessUnit> {
        let mut held = std::mem::take(&mut self.held);
        if from_keyframe {
            held.drain(..self.key.min(held.len()));
        }
        self.key = 0;
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::avc::tests::AVCC_320X240;
    use crate::media::{AacConfig, AvcConfig};
    use bytes::Bytes;

    fn info(video: bool) -> Arc<MediaInfo> {
        Arc::new(MediaInfo {
            video: video.then(|| AvcConfig::parse(Bytes::from_static(AVCC_320X240)).unwrap()),
            audio: Some(AacConfig::parse(Bytes::from_static(&[0x11, 0x90])).unwrap()),
            declared_bitrate: None,
        })
    }

    fn video(n: i64, keyframe: bool) -> AccessUnit {
        AccessUnit {
            track: TrackKind::Video,
            dts: n,
            pts: n,
            keyframe,
            data: Bytes::new(),
            received: Instant::now(),
        }
    }

    fn watch(video: bool) -> Watch {
        Watch {
            info: Some(info(video)),
            ..Default::default()
        }
    }

    fn dts(frames: &[AccessUnit]) -> Vec<i64> {
        frames.iter().map(|f| f.dts).collect()
    }

    #[test]
    fn a_waiting_input_holds_its_last_two_gops_and_starts_from_the_last_keyframe() {
        let mut w = watch(true);
        // Before the first keyframe: nothing to start from.
        w.hold(video(0, false));
        assert!(w.held().is_empty());
        for n in 1..=9 {
            w.hold(video(n, n % 3 == 1));
            if n % 3 == 1 {
                assert!(w.at_keyframe(), "frame {n}");
            }
        }
        assert!(!w.at_keyframe());
        // Keyframes at 1, 4, 7: the GOPs of 4 and 7 are held.
        assert_eq!(dts(w.held()), [4, 5, 6, 7, 8, 9]);
        assert_eq!(dts(&w.take(true)), [7, 8, 9]);
        assert!(w.held().is_empty());
        w.hold(video(10, true));
        w.hold(video(11, false));
        assert_eq!(dts(&w.take(false)), [10, 11]);
    }

    #[test]
    fn a_gop_too_long_to_start_from_is_let_go() {
        let mut w = watch(true);
        w.hold(video(0, true));
        for n in 1..HELD_FRAMES as i64 {
            w.hold(video(n, false));
        }
        assert_eq!(w.held().len(), HELD_FRAMES);
        w.hold(video(HELD_FRAMES as i64, false));
        assert!(w.held().is_empty());
        // The next keyframe starts over.
        w.hold(video(HELD_FRAMES as i64 + 1, true));
        assert_eq!(w.held().len(), 1);
    }

    #[test]
    fn an_audio_only_input_holds_its_last_frames() {
        let mut w = watch(false);
        for n in 0..(HELD_AUDIO_ONLY as i64 + 10) {
            w.hold(AccessUnit::audio(n * 1024, Bytes::new(), Instant::now()));
        }
        assert_eq!(w.held().len(), HELD_AUDIO_ONLY);
        assert_eq!(w.held()[0].pts, 10 * 1024);
        assert_eq!(w.take(true).len(), HELD_AUDIO_ONLY);
    }
}
