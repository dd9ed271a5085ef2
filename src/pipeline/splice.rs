//! A switch between two inputs that carry one encoder's stream (its outputs
//! to the primary and the backup URL): the same frames, byte for byte, on
//! clocks that may have started apart. Such a switch needs no
//! discontinuity: found by the bytes of the frames last served, the new
//! input's frames are moved onto the served clock, and those already served
//! are skipped, so the renditions see one session go on.
//!
//! Pure: frames in, offsets out.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

use crate::media::{rescale, AccessUnit, TrackKind, VIDEO_TIMESCALE};

/// Frames served remembered (about 3 s of 30 fps video with 48 kHz audio):
/// the other input may be that far behind and still continue the timeline.
const RECENT: usize = 256;

/// How far behind what was served the other input may be and still be
/// spliced on (a quarter of a second, 90 kHz): the timeline stands still
/// until it passes that point. Further behind, it is not the same moment of
/// the stream (two encoders of one test pattern, one file played twice).
const MAX_BEHIND: i64 = VIDEO_TIMESCALE as i64 / 4;

/// What identifies a coded frame: its length and its first and last bytes
/// (an H.264 slice header holds frame_num and the picture order count, so
/// two frames of one GOP differ there even when the picture does not).
fn fingerprint(data: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.len().hash(&mut h);
    data[..data.len().min(64)].hash(&mut h);
    data[data.len().saturating_sub(64)..].hash(&mut h);
    h.finish()
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    track: TrackKind,
    dts: i64,
    pts: i64,
    print: u64,
}

/// The frames last served, on the served clock.
#[derive(Debug, Default)]
pub struct Served {
    recent: VecDeque<Seen>,
}

impl Served {
    /// `au` was handed to the renditions.
    pub fn note(&mut self, au: &AccessUnit) {
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(Seen {
            track: au.track,
            dts: au.dts,
            pts: au.pts,
            print: fingerprint(&au.data),
        });
    }

    /// The served timeline starts over (new tracks, the slate).
    pub fn clear(&mut self) {
        self.recent.clear();
    }

    /// Whether `held` (another input's frames from its last keyframe, on
    /// its own clock) carries frames served here, and by how much its
    /// clocks differ. `audio_rate`: the audio's timescale, if it has audio.
    pub fn splice(&self, held: &[AccessUnit], audio_rate: Option<u32>) -> Option<Splice> {
        let has_video = held.iter().any(|f| f.track == TrackKind::Video);
        let video = if has_video {
            Some(self.latest_match(TrackKind::Video, held, |_| true)?)
        } else {
            None
        };
        let audio = match audio_rate {
            // The audio frame at the video's offset (silence repeats itself:
            // the match nearest to it is the one meant).
            Some(rate) => {
                let frame = rescale(crate::media::aac::SAMPLES_PER_FRAME, rate, VIDEO_TIMESCALE);
                let near = |off: i64| {
                    video.is_none_or(|v| (rescale(off, rate, VIDEO_TIMESCALE) - v).abs() <= frame)
                };
                Some(self.latest_match(TrackKind::Audio, held, near)?)
            }
            None => None,
        };
        let last = |track| {
            self.recent
                .iter()
                .filter(|s| s.track == track)
                .map(|s| {
                    if track == TrackKind::Video {
                        s.dts
                    } else {
                        s.pts
                    }
                })
                .max()
        };
        let splice = Splice {
            video: video.unwrap_or(0),
            audio: audio.unwrap_or(0),
            video_served: last(TrackKind::Video),
            audio_served: last(TrackKind::Audio),
        };
        // How far the held frames reach past what was served (90 kHz).
        let ahead = if has_video {
            let newest = held
                .iter()
                .filter(|f| f.track == TrackKind::Video)
                .map(|f| f.dts)
                .max();
            newest
                .zip(splice.video_served)
                .map(|(n, s)| n + splice.video - s)
        } else {
            let newest = held.iter().map(|f| f.pts).max();
            let rate = audio_rate.unwrap_or(VIDEO_TIMESCALE);
            newest
                .zip(splice.audio_served)
                .map(|(n, s)| rescale(n + splice.audio - s, rate, VIDEO_TIMESCALE))
        };
        ahead.is_some_and(|a| a >= -MAX_BEHIND).then_some(splice)
    }

    /// The offset (served clock minus held clock) of the newest served
    /// frame of `track` that `held` also has, and that `fits`.
    fn latest_match(
        &self,
        track: TrackKind,
        held: &[AccessUnit],
        fits: impl Fn(i64) -> bool,
    ) -> Option<i64> {
        let held: Vec<(&AccessUnit, u64)> = held
            .iter()
            .filter(|f| f.track == track)
            .map(|f| (f, fingerprint(&f.data)))
            .collect();
        self.recent
            .iter()
            .rev()
            .filter(|s| s.track == track)
            .find_map(|s| {
                held.iter().rev().find_map(|(f, print)| {
                    let off = s.pts - f.pts;
                    (*print == s.print && s.dts - f.dts == off && fits(off)).then_some(off)
                })
            })
    }
}

/// How one input's frames continue the served timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Splice {
    /// Added to its video timestamps (90 kHz).
    video: i64,
    /// Added to its audio timestamps (the audio's timescale).
    audio: i64,
    /// The last video decode time and audio presentation time served:
    /// frames up to them were served already.
    video_served: Option<i64>,
    audio_served: Option<i64>,
}

impl Splice {
    /// `au` on the served clock, or `None` if it was served already.
    pub fn map(&self, mut au: AccessUnit) -> Option<AccessUnit> {
        let (off, served, at) = match au.track {
            TrackKind::Video => (self.video, self.video_served, au.dts + self.video),
            TrackKind::Audio => (self.audio, self.audio_served, au.pts + self.audio),
        };
        if served.is_some_and(|s| at <= s) {
            return None;
        }
        au.pts += off;
        au.dts += off;
        Some(au)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Instant;

    const FRAME: i64 = 3000;
    const AUDIO: i64 = 1024;

    /// Video frame `n` of one encoder (two B-frames: presented 2 frames
    /// after it is decoded), with bytes that say which frame it is.
    fn video(n: i64, clock: i64) -> AccessUnit {
        AccessUnit {
            track: TrackKind::Video,
            dts: n * FRAME + clock,
            pts: (n + 2) * FRAME + clock,
            keyframe: n % 30 == 0,
            data: Bytes::from(format!("frame_num {n} slice data")),
            received: Instant::now(),
        }
    }

    fn audio(n: i64, clock: i64, silent: bool) -> AccessUnit {
        let data = if silent {
            Bytes::from_static(b"silence")
        } else {
            Bytes::from(format!("aac {n}"))
        };
        AccessUnit::audio(n * AUDIO + clock, data, Instant::now())
    }

    /// One encoder's first `frames` video frames with the audio between
    /// them (48 kHz: 1024 samples are 1920 ticks at 90 kHz).
    fn stream(
        frames: std::ops::Range<i64>,
        vclock: i64,
        aclock: i64,
        silent: bool,
    ) -> Vec<AccessUnit> {
        let mut out = Vec::new();
        for n in frames {
            out.push(video(n, vclock));
            let (from, to) = (
                n * FRAME * 48 / 90 / AUDIO,
                (n + 1) * FRAME * 48 / 90 / AUDIO,
            );
            for a in from..to {
                out.push(audio(a, aclock, silent));
            }
        }
        out
    }

    #[test]
    fn a_backup_ahead_continues_after_the_last_frame_served() {
        let mut served = Served::default();
        for f in stream(0..50, 0, 0, false) {
            served.note(&f);
        }
        // The backup's clock started 10 s later (its session began later);
        // it holds frames 30..60 (from its keyframe).
        let (v, a) = (-900_000, -480_000);
        let held = stream(30..60, v, a, false);
        let s = served.splice(&held, Some(48_000)).expect("a splice");
        let out: Vec<AccessUnit> = held.into_iter().filter_map(|f| s.map(f)).collect();
        // The first video frame out is frame 50, on the served clock.
        let first = out.iter().find(|f| f.track == TrackKind::Video).unwrap();
        assert_eq!((first.dts, first.pts), (50 * FRAME, 52 * FRAME));
        // Audio resumes right after the last audio frame served.
        let last_audio = (50 * FRAME * 48 / 90 / AUDIO) - 1;
        let first_audio = out.iter().find(|f| f.track == TrackKind::Audio).unwrap();
        assert_eq!(first_audio.pts, (last_audio + 1) * AUDIO);
    }

    #[test]
    fn a_backup_a_little_behind_waits_until_it_passes_what_was_served() {
        let mut served = Served::default();
        for f in stream(0..50, 0, 0, false) {
            served.note(&f);
        }
        // Held frames 30..45: all served already, the newest 5 frames
        // (0.17 s) behind.
        let s = served
            .splice(&stream(30..45, 7, 0, false), Some(48_000))
            .unwrap();
        assert!(stream(30..45, 7, 0, false)
            .into_iter()
            .all(|f| s.map(f).is_none()));
        assert_eq!(s.map(video(50, 7)).map(|f| f.dts), Some(50 * FRAME));
        // Ten frames behind (0.33 s): not the same moment of the stream.
        let far = stream(30..40, 7, 0, false);
        assert_eq!(served.splice(&far, Some(48_000)), None);
    }

    #[test]
    fn another_encoder_or_silence_alone_is_no_splice() {
        let mut served = Served::default();
        for f in stream(0..50, 0, 0, true) {
            served.note(&f);
        }
        // Other video bytes (another encoder): no match.
        let mut other = stream(30..60, 0, 0, true);
        for f in other.iter_mut().filter(|f| f.track == TrackKind::Video) {
            f.data = Bytes::from(format!("other {}", f.dts));
        }
        assert_eq!(served.splice(&other, Some(48_000)), None);
        // Matching video, silent audio: the audio frame meant is the one at
        // the video's offset, not the newest silent one.
        let held = stream(30..60, 4 * FRAME, 0, true);
        let s = served.splice(&held, Some(48_000)).unwrap();
        assert_eq!(s.video, -4 * FRAME);
        assert!((rescale(s.audio, 48_000, VIDEO_TIMESCALE) + 4 * FRAME).abs() <= 1920);
    }

    #[test]
    fn nothing_served_is_no_splice() {
        let served = Served::default();
        assert_eq!(
            served.splice(&stream(0..10, 0, 0, false), Some(48_000)),
            None
        );
    }
}
