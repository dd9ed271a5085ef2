//! One rung's encoder thread: decoded frames in (shared by reference),
//! scaled with swscale unless the stream's scale graph did it already, encoded (an IDR where the stream's decode thread says
//! so), Annex B turned into AVCC, out to the rung's packager. A failed
//! encoder is reopened and the rung resumes alone at the next cut.

use std::collections::VecDeque;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Instant;

use ffmpeg_next as ffmpeg;
use tokio::sync::mpsc;

use super::encoder::{Backend, EncoderSettings};
use super::plan::{FrameRateCap, Rung};
use crate::media::{annexb, AccessUnit, AvcConfig, MediaInfo, TrackKind};
use crate::metrics::Metrics;
use crate::package::packager::Input;
use crate::package::segmenter::SegmentCut;

/// Bound on the small per-thread lookup queues (cuts, arrival times).
pub(super) const LOOKUP: usize = 256;

/// What was kept for the frame or packet of `pts`, taken out of `q`.
pub(super) fn take_by_pts<T>(q: &mut VecDeque<(i64, T)>, pts: i64) -> Option<T> {
    let i = q.iter().position(|(p, _)| *p == pts)?;
    q.remove(i).map(|(_, t)| t)
}

/// What the decode thread sends each rung.
pub(super) enum RungJob {
    Frame {
        frame: ffmpeg::frame::Video,
        pts: i64,
        cut: Option<SegmentCut>,
        /// An IDR that opens no segment (`transcode.keyframe_interval`).
        refresh: bool,
        times: FrameTimes,
    },
    Gap,
    End,
}

/// When a frame's source arrived and when the decoder gave it out: the two
/// starts of the added latency (`castline_transcode_latency_seconds` from the
/// first, `castline_transcode_encode_latency_seconds` from the second, which
/// leaves out the source's B-frame reorder delay).
#[derive(Debug, Clone, Copy)]
pub(super) struct FrameTimes {
    pub(super) received: Instant,
    pub(super) decoded: Instant,
}

impl FrameTimes {
    /// For a packet whose frame's times are not known (none is lost in
    /// practice): both starts now, so both histograms count every packet.
    fn now() -> Self {
        let now = Instant::now();
        FrameTimes {
            received: now,
            decoded: now,
        }
    }
}

/// Whether a frame must be encoded as an IDR, and why.
#[derive(Debug, Clone, Copy)]
pub(super) enum Forced {
    /// It opens a segment.
    Cut(SegmentCut),
    /// `transcode.keyframe_interval`: it opens an independent part.
    Refresh,
    No,
}

/// Fault injection for tests: `CASTLINE_FAULT_RUNG=NAME:FRAMES:ACTION` makes
/// rung NAME, after FRAMES frames, either stall once (`stall-MS`: as a
/// hiccupping encoder would) or fail (`fail`: as a crashed encoder would),
/// or its encoder not open at all (`open`, FRAMES ignored: as an encoder
/// with no session left would), so the falling-behind, restart and
/// served-as-published paths can be exercised on any machine.
/// Unset (always, outside tests), it costs nothing.
pub const FAULT_RUNG: &str = "CASTLINE_FAULT_RUNG";

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Fault {
    Stall(std::time::Duration),
    Fail,
    Open,
}

/// (frame number, fault) for `rung`, from [`FAULT_RUNG`].
pub(super) fn injected_fault(rung: &str) -> Option<(u64, Fault)> {
    let v = std::env::var(FAULT_RUNG).ok()?;
    let mut it = v.split(':');
    if it.next()? != rung {
        return None;
    }
    let frames = it.next()?.parse().ok()?;
    let fault = match it.next()? {
        "fail" => Fault::Fail,
        "open" => Fault::Open,
        a => Fault::Stall(std::time::Duration::from_millis(
            a.strip_prefix("stall-")?.parse().ok()?,
        )),
    };
    Some((frames, fault))
}

pub(super) struct RungWorker {
    /// Drops frames above the rung's frame-rate cap.
    pub(super) cap: Option<FrameRateCap>,
    pub(super) stream: String,
    pub(super) rung: Rung,
    pub(super) backend: Backend,
    pub(super) settings: EncoderSettings,
    pub(super) output: mpsc::Sender<Input>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) cuts: VecDeque<(i64, SegmentCut)>,
    pub(super) times: VecDeque<(i64, FrameTimes)>,
    pub(super) warned_not_idr: bool,
    pub(super) fault: Option<(u64, Fault)>,
    pub(super) frames: u64,
    /// The track last described to the packager.
    pub(super) announced: Option<AvcConfig>,
    /// After an encoder restart: encode again from the next cut only.
    pub(super) wait_cut: bool,
    /// Frames come scaled by the stream's scale graph (GPU frame path).
    pub(super) prescaled: bool,
}

/// A rung's two latency histograms (see [`FrameTimes`]).
struct Latency {
    from_socket: prometheus_client::metrics::histogram::Histogram,
    from_decoder: prometheus_client::metrics::histogram::Histogram,
}

type Scaler = (
    ffmpeg::format::Pixel,
    u32,
    u32,
    ffmpeg::software::scaling::Context,
);

impl RungWorker {
    pub(super) fn run(mut self, enc: ffmpeg::encoder::Video, rx: std_mpsc::Receiver<RungJob>) {
        let sessions = self
            .metrics
            .encoder_sessions
            .get_or_create(&crate::metrics::BackendLabel {
                backend: self.backend.label(),
            })
            .clone();
        sessions.inc();
        self.encode_all(enc, rx);
        sessions.dec();
    }

    fn encode_all(&mut self, mut enc: ffmpeg::encoder::Video, rx: std_mpsc::Receiver<RungJob>) {
        if !self.announce(&enc) {
            return;
        }
        let mut scaler: Option<Scaler> = None;
        let label = crate::metrics::RenditionLabel {
            rendition: self.rung.name.clone(),
        };
        let latency = Latency {
            from_socket: self.metrics.transcode_latency.get_or_create(&label).clone(),
            from_decoder: self
                .metrics
                .transcode_encode_latency
                .get_or_create(&label)
                .clone(),
        };
        let dropped = self
            .metrics
            .transcode_dropped_frames
            .get_or_create(&label)
            .clone();
        while let Ok(job) = rx.recv() {
            match job {
                RungJob::Frame {
                    frame,
                    pts,
                    cut,
                    refresh,
                    times,
                } => {
                    if self.wait_cut && cut.is_none() {
                        dropped.inc();
                        continue;
                    }
                    self.wait_cut = false;
                    if let Some(cap) = &mut self.cap {
                        // The IDR frames must exist on every rung.
                        if !cap.keep(pts, cut.is_some() || refresh) {
                            continue;
                        }
                    }
                    let Some(out) = self.scale(&mut scaler, frame) else {
                        continue;
                    };
                    let key = match (cut, refresh) {
                        (Some(msn), _) => Forced::Cut(msn),
                        (None, true) => Forced::Refresh,
                        (None, false) => Forced::No,
                    };
                    if !self.encode(&mut enc, out, pts, key, times, &latency) {
                        return;
                    }
                }
                RungJob::Gap => {
                    self.cuts.clear();
                    if self.output.blocking_send(Input::Gap).is_err() {
                        return;
                    }
                }
                RungJob::End => break,
            }
        }
        if enc.send_eof().is_ok() {
            self.drain(&mut enc, &latency);
        }
        let _ = self.output.blocking_send(Input::End);
    }

    /// Describe the encoder's track (from its SPS/PPS) to the packager when it
    /// is new or changed. False when the rung cannot go on.
    fn announce(&mut self, enc: &ffmpeg::encoder::Video) -> bool {
        let extradata = super::encoder::extradata(enc);
        let config = match annexb::avc_config(&extradata) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(stream = %self.stream, rung = %self.rung.name, error = %e, "encoder gave no usable SPS/PPS; rung stopped");
                return false;
            }
        };
        if self.announced.as_ref() == Some(&config) {
            return true;
        }
        self.announced = Some(config.clone());
        let info = MediaInfo {
            video: Some(config),
            audio: None,
            declared_bitrate: Some(self.rung.bitrate),
        };
        self.output
            .blocking_send(Input::Tracks(Arc::new(info)))
            .is_ok()
    }

    /// The frame at the rung's size: as it comes from the stream's scale
    /// graph (GPU frame path), else swscaled here.
    fn scale(
        &self,
        scaler: &mut Option<Scaler>,
        frame: ffmpeg::frame::Video,
    ) -> Option<ffmpeg::frame::Video> {
        let key = (frame.format(), frame.width(), frame.height());
        if self.prescaled {
            let size = (frame.width(), frame.height());
            if size == (self.rung.width, self.rung.height) {
                return Some(frame);
            }
            self.metrics.transcode_errors.inc();
            tracing::debug!(rung = %self.rung.name, ?size, "the scale graph gave a frame of another size");
            return None;
        }
        let frame = &frame;
        if scaler.as_ref().is_none_or(|s| (s.0, s.1, s.2) != key) {
            match ffmpeg::software::scaling::Context::get(
                key.0,
                key.1,
                key.2,
                ffmpeg::format::Pixel::YUV420P,
                self.rung.width,
                self.rung.height,
                ffmpeg::software::scaling::Flags::BILINEAR,
            ) {
                Ok(s) => *scaler = Some((key.0, key.1, key.2, s)),
                Err(e) => {
                    tracing::error!(stream = %self.stream, rung = %self.rung.name, error = %e, "cannot scale the source");
                    return None;
                }
            }
        }
        let (_, _, _, s) = scaler.as_mut()?;
        let mut out = ffmpeg::frame::Video::new(
            ffmpeg::format::Pixel::YUV420P,
            self.rung.width,
            self.rung.height,
        );
        if let Err(e) = s.run(frame, &mut out) {
            self.metrics.transcode_errors.inc();
            tracing::debug!(error = %e, "scaling failed");
            return None;
        }
        Some(out)
    }

    /// Encode one frame and hand on what comes out. False when the rung
    /// cannot go on (its packager is gone, or its encoder cannot reopen).
    fn encode(
        &mut self,
        enc: &mut ffmpeg::encoder::Video,
        mut out: ffmpeg::frame::Video,
        pts: i64,
        key: Forced,
        times: FrameTimes,
        latency: &Latency,
    ) -> bool {
        self.frames += 1;
        let mut failed = false;
        match self.fault {
            Some((at, Fault::Stall(d))) if at == self.frames => {
                tracing::warn!(rung = %self.rung.name, stall = ?d, "injected encoder stall ({FAULT_RUNG})");
                std::thread::sleep(d);
            }
            Some((at, Fault::Fail)) if at == self.frames => {
                tracing::warn!(rung = %self.rung.name, "injected encoder failure ({FAULT_RUNG})");
                failed = true;
            }
            _ => {}
        }
        out.set_pts(Some(pts));
        out.set_kind(match key {
            Forced::No => ffmpeg::picture::Type::None,
            Forced::Cut(_) | Forced::Refresh => ffmpeg::picture::Type::I,
        });
        if let Forced::Cut(cut) = key {
            push_bounded(&mut self.cuts, (pts, cut));
        }
        push_bounded(&mut self.times, (pts, times));
        if !failed {
            match enc.send_frame(&out) {
                Ok(()) => return self.drain(enc, latency),
                Err(e) => {
                    tracing::warn!(stream = %self.stream, rung = %self.rung.name, error = %e, "the encoder failed");
                }
            }
        }
        self.restart(enc)
    }

    /// The encoder failed: open a new one, and resume this rung (alone) at
    /// the next cut behind a discontinuity. The other rungs never notice.
    fn restart(&mut self, enc: &mut ffmpeg::encoder::Video) -> bool {
        self.metrics.transcode_errors.inc();
        match self.backend.open(&self.settings) {
            Ok(new) => *enc = new,
            Err(e) => {
                tracing::error!(stream = %self.stream, rung = %self.rung.name, error = %e, "the encoder cannot reopen; rung stopped");
                return false;
            }
        }
        tracing::warn!(stream = %self.stream, rung = %self.rung.name, "encoder restarted; the rung resumes at the next cut");
        self.cuts.clear();
        self.times.clear();
        self.wait_cut = true;
        self.output.blocking_send(Input::Gap).is_ok() && self.announce(enc)
    }

    /// Hand every packet the encoder has ready to the rendition's packager.
    fn drain(&mut self, enc: &mut ffmpeg::encoder::Video, latency: &Latency) -> bool {
        loop {
            let mut pkt = ffmpeg::Packet::empty();
            if enc.receive_packet(&mut pkt).is_err() {
                return true;
            }
            let (Some(data), Some(pts)) = (pkt.data(), pkt.pts()) else {
                continue;
            };
            let dts = pkt.dts().unwrap_or(pts);
            let (avcc, idr) = annexb::to_avcc(data);
            while self.cuts.front().is_some_and(|(p, _)| *p < pts) {
                self.cuts.pop_front();
            }
            let cut = match self.cuts.front() {
                Some((p, cut)) if *p == pts => {
                    let cut = *cut;
                    self.cuts.pop_front();
                    Some(cut)
                }
                _ => None,
            };
            if cut.is_some() && !idr && !self.warned_not_idr {
                self.warned_not_idr = true;
                tracing::warn!(stream = %self.stream, rung = %self.rung.name, backend = self.backend.label(), "a forced keyframe came out without an IDR");
            }
            let times = take_by_pts(&mut self.times, pts).unwrap_or_else(FrameTimes::now);
            let received = times.received;
            latency
                .from_socket
                .observe(received.elapsed().as_secs_f64());
            latency
                .from_decoder
                .observe(times.decoded.elapsed().as_secs_f64());
            let au = AccessUnit {
                track: TrackKind::Video,
                dts,
                pts,
                keyframe: idr,
                data: avcc,
                received,
            };
            if self.output.blocking_send(Input::Media(au, cut)).is_err() {
                return false;
            }
        }
    }
}

fn push_bounded<T>(q: &mut VecDeque<T>, v: T) {
    if q.len() >= LOOKUP {
        q.pop_front();
    }
    q.push_back(v);
}
