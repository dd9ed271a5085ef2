//! The transcoder of one stream: decode the source once, then scale and
//! encode every rung. Decoding and each rung run on their own threads, off
//! the tokio runtime, joined by bounded queues that block (never drop): a slow
//! encoder slows the decoder, which slows the stream's pipeline, which then
//! loses hub events and restarts every rendition alike at the next cut.

use std::collections::VecDeque;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use ffmpeg_next as ffmpeg;
use tokio::sync::mpsc;

use super::encoder::{open_rung, Backend, EncoderError, FrameInput, Presets};
use super::gpu::{self, CudaDevice};
use super::graph::{Output, ScaleGraph, Scaler};
use super::plan::{FrameRateCap, KeyframeClock, Rung};
use super::rung::{injected_fault, take_by_pts, Fault, FrameTimes, RungJob, RungWorker, LOOKUP};
use super::schedule::Cut;
use crate::media::{AccessUnit, AvcConfig, MediaInfo, VIDEO_TIMESCALE};
use crate::metrics::Metrics;
use crate::package::packager::Input;

/// What the stream's pipeline sends the transcoder.
#[derive(Debug)]
pub enum Job {
    Tracks(Arc<MediaInfo>),
    /// A source video access unit, and the cut it opens (if any).
    Packet(AccessUnit, Option<Cut>),
    Gap,
    End,
}

/// One rung to encode and where its output goes.
pub struct RungTarget {
    pub rung: Rung,
    pub output: mpsc::Sender<Input>,
}

/// How decoded frames reach the encoders.
#[derive(Clone, Default)]
pub enum FramePath {
    /// Decoded on the CPU; each rung scales (swscale) on its own thread.
    #[default]
    Cpu,
    /// The GPU frame path: NVDEC decodes, one `scale_cuda` graph per stream
    /// scales to every rung, NVENC encodes from CUDA frames.
    Cuda(Arc<CudaDevice>),
    /// The GPU path's plumbing with the software `scale` filter on the
    /// decode thread; only for tests ([`SCALE_GRAPH`]), so the graph stage
    /// runs end to end on machines without a GPU.
    SoftwareGraph,
}

/// Test hook: `CASTLINE_SCALE_GRAPH=software` puts the ladder on
/// [`FramePath::SoftwareGraph`] where it would run on the CPU.
pub const SCALE_GRAPH: &str = "CASTLINE_SCALE_GRAPH";

impl FramePath {
    /// The label in metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            FramePath::Cpu => "cpu",
            FramePath::Cuda(_) => "cuda",
            FramePath::SoftwareGraph => "software_graph",
        }
    }

    fn device(&self) -> Option<&Arc<CudaDevice>> {
        match self {
            FramePath::Cuda(d) => Some(d),
            _ => None,
        }
    }
}

impl std::fmt::Debug for FramePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Source packets waiting for the decoder thread (about 2 s at 30 fps).
const DECODE_QUEUE: usize = 64;
/// Decoded frames waiting for one rung's encoder.
const RUNG_QUEUE: usize = 4;

pub struct Transcoder {
    tx: mpsc::Sender<Job>,
    threads: Vec<JoinHandle<()>>,
}

impl Transcoder {
    /// Open every rung's encoder and the decoder, then start the threads.
    /// Fails (and starts nothing) when any of them cannot open.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        stream: &str,
        backend: Backend,
        presets: &Presets,
        frames: &FramePath,
        video: &AvcConfig,
        targets: Vec<RungTarget>,
        keyframe_interval: Option<std::time::Duration>,
        metrics: Arc<Metrics>,
    ) -> Result<Transcoder, EncoderError> {
        let fps = video.frame_rate.unwrap_or(30.0);
        let input = frames
            .device()
            .map_or(FrameInput::System, |d| FrameInput::Cuda(d.clone()));
        let mut encoders = Vec::with_capacity(targets.len());
        for t in &targets {
            if injected_fault(&t.rung.name).is_some_and(|(_, f)| f == Fault::Open) {
                return Err(EncoderError::Injected(t.rung.name.clone()));
            }
            let rung_fps = t.rung.max_fps.map_or(fps, |cap| cap.min(fps));
            encoders.push(open_rung(backend, presets, &t.rung, rung_fps, &input)?);
        }
        let graph = match frames {
            FramePath::Cpu => None,
            FramePath::Cuda(_) | FramePath::SoftwareGraph => Some(GraphStage {
                scaler: match frames {
                    FramePath::Cuda(_) => Scaler::Cuda,
                    _ => Scaler::Software,
                },
                device: frames.device().cloned(),
                outputs: encoders
                    .iter()
                    .map(|(_, s, b)| Output {
                        width: s.width,
                        height: s.height,
                        download: !s.on_gpu(*b),
                    })
                    .collect(),
                built: None,
                warned: false,
            }),
        };
        let decoder = open_decoder(video, frames.device().map(|d| &**d))?;
        let mut threads = Vec::new();
        let mut rung_txs = Vec::new();
        for (t, (enc, settings, backend)) in targets.into_iter().zip(encoders) {
            let (tx, rx) = std_mpsc::sync_channel(RUNG_QUEUE);
            rung_txs.push(tx);
            let fault = injected_fault(&t.rung.name);
            let cap = t
                .rung
                .max_fps
                .filter(|&cap| cap < fps)
                .map(|cap| FrameRateCap::new(cap, VIDEO_TIMESCALE));
            let worker = RungWorker {
                cap,
                stream: stream.to_string(),
                rung: t.rung,
                backend,
                settings,
                output: t.output,
                metrics: metrics.clone(),
                cuts: VecDeque::new(),
                times: VecDeque::new(),
                warned_not_idr: false,
                fault,
                frames: 0,
                prescaled: graph.is_some(),
                announced: None,
                wait_cut: false,
            };
            let name = format!("enc-{}", worker.rung.name);
            threads.push(
                std::thread::Builder::new()
                    .name(name)
                    .spawn(move || worker.run(enc, rx))
                    .map_err(EncoderError::Thread)?,
            );
        }
        let (tx, rx) = mpsc::channel(DECODE_QUEUE);
        let frame_ticks = (VIDEO_TIMESCALE as f64 / fps.max(1.0)).round() as i64;
        let d = DecodeWorker {
            keyframes: keyframe_interval.map(|i| {
                KeyframeClock::new(
                    (i.as_secs_f64() * VIDEO_TIMESCALE as f64).round() as i64,
                    frame_ticks,
                )
            }),
            stream: stream.to_string(),
            source: video.clone(),
            device: frames.device().cloned(),
            graph,
            rungs: rung_txs,
            frame_ticks,
            offset: 0,
            last_out: None,
            rebase: false,
            wait_key: true,
            started: false,
            pending: VecDeque::new(),
            received: VecDeque::new(),
            metrics,
        };
        threads.push(
            std::thread::Builder::new()
                .name("decode".into())
                .spawn(move || d.run(decoder, rx))
                .map_err(|e| {
                    EncoderError::Encode(ffmpeg::Error::from(e.raw_os_error().unwrap_or(1)))
                })?,
        );
        Ok(Transcoder { tx, threads })
    }

    /// Queue a job; waits while the decoder is a full queue behind.
    /// False when the transcoder has stopped.
    pub async fn send(&self, job: Job) -> bool {
        self.tx.send(job).await.is_ok()
    }

    /// Wait for every thread to finish (call after sending [`Job::End`]).
    pub fn join(self) {
        drop(self.tx);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Open an H.264 decoder for `avc`; on `device` (NVDEC) when given.
fn open_decoder(
    avc: &AvcConfig,
    device: Option<&CudaDevice>,
) -> Result<ffmpeg::decoder::Video, EncoderError> {
    let codec = ffmpeg::decoder::find(ffmpeg::codec::Id::H264)
        .ok_or(EncoderError::Missing("h264 decoder"))?;
    let mut ctx = ffmpeg::codec::context::Context::new_with_codec(codec);
    let record = &avc.record;
    // SAFETY: the context is fresh and owned here; FFmpeg takes ownership of
    // the av_mallocz'd extradata (padded as it requires) and frees it with the context.
    unsafe {
        let p = ctx.as_mut_ptr();
        let pad = ffmpeg::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
        let buf = ffmpeg::ffi::av_mallocz(record.len() + pad) as *mut u8;
        if buf.is_null() {
            return Err(EncoderError::Encode(ffmpeg::Error::Bug));
        }
        std::ptr::copy_nonoverlapping(record.as_ptr(), buf, record.len());
        (*p).extradata = buf;
        (*p).extradata_size = record.len() as i32;
        (*p).pkt_timebase = ffmpeg::ffi::AVRational {
            num: 1,
            den: VIDEO_TIMESCALE as i32,
        };
        if let Some(device) = device {
            gpu::decode_on(p, device);
        }
    }
    ctx.decoder().video().map_err(EncoderError::Encode)
}

/// A new reference to the same decoded picture (no copy of the pixels).
fn share(frame: &ffmpeg::frame::Video) -> Option<ffmpeg::frame::Video> {
    let mut out = ffmpeg::frame::Video::empty();
    // SAFETY: both frames are valid AVFrames; av_frame_ref adds a reference
    // to the source's buffers and copies its properties into the empty frame.
    let r = unsafe { ffmpeg::ffi::av_frame_ref(out.as_mut_ptr(), frame.as_ptr()) };
    (r >= 0).then_some(out)
}

/// The decode thread's scale graph (GPU frame path): one frame in, one
/// frame per rung out, built again when the decoded frames change shape.
struct GraphStage {
    scaler: Scaler,
    device: Option<Arc<CudaDevice>>,
    outputs: Vec<Output>,
    built: Option<ScaleGraph>,
    /// A build failure was logged (once per stream).
    warned: bool,
}

impl GraphStage {
    fn run(
        &mut self,
        stream: &str,
        frame: &ffmpeg::frame::Video,
    ) -> Option<Vec<Option<ffmpeg::frame::Video>>> {
        if !self.built.as_ref().is_some_and(|g| g.fits(frame)) {
            self.built = None;
            match ScaleGraph::new(frame, &self.outputs, self.scaler, self.device.as_deref()) {
                Ok(g) => {
                    tracing::debug!(stream, size = %format!("{}x{}", frame.width(), frame.height()), "scale graph built");
                    self.built = Some(g);
                }
                Err(e) => {
                    if !std::mem::replace(&mut self.warned, true) {
                        tracing::error!(stream, error = %e, "the scale graph cannot run; frames are dropped");
                    }
                    return None;
                }
            }
        }
        match self.built.as_mut()?.run(frame) {
            Ok(out) => Some(out),
            Err(e) => {
                tracing::debug!(stream, error = %e, "the scale graph refused a frame");
                None
            }
        }
    }
}

struct DecodeWorker {
    /// Extra IDRs between cuts, the same frames on every rung.
    keyframes: Option<KeyframeClock>,
    stream: String,
    source: AvcConfig,
    /// Where the decoder runs (NVDEC) on the GPU frame path.
    device: Option<Arc<CudaDevice>>,
    /// Scales on the decode thread, for every rung (GPU frame path).
    graph: Option<GraphStage>,
    rungs: Vec<std_mpsc::SyncSender<RungJob>>,
    frame_ticks: i64,
    /// Added to decoded timestamps so every session continues one timeline
    /// (the encoders need increasing timestamps across reconnects).
    offset: i64,
    last_out: Option<i64>,
    rebase: bool,
    /// Feed the decoder from the next keyframe only (start, new session, gap).
    wait_key: bool,
    /// A cut has opened a segment; frames before the first cut are not encoded.
    started: bool,
    pending: VecDeque<Cut>,
    received: VecDeque<(i64, Instant)>,
    metrics: Arc<Metrics>,
}

impl DecodeWorker {
    fn run(mut self, mut decoder: ffmpeg::decoder::Video, mut rx: mpsc::Receiver<Job>) {
        while let Some(job) = rx.blocking_recv() {
            match job {
                Job::Tracks(info) => {
                    // What the decoder still holds (B-frame reordering) goes
                    // out first: a cut already handed to the video must reach
                    // the rungs, or the audio would list a segment they lack.
                    if decoder.send_eof().is_ok() {
                        self.drain(&mut decoder);
                    }
                    if let Some(v) = info.video.as_ref().filter(|v| **v != self.source) {
                        match open_decoder(v, self.device.as_deref()) {
                            Ok(d) => {
                                decoder = d;
                                self.source = v.clone();
                            }
                            Err(e) => {
                                decoder.flush();
                                tracing::error!(stream = %self.stream, error = %e, "cannot reopen the decoder for the new session")
                            }
                        }
                    } else {
                        decoder.flush();
                    }
                    self.restart();
                    self.rebase = true;
                }
                Job::Packet(au, cut) => {
                    if let Some(c) = cut {
                        if self.pending.len() >= LOOKUP {
                            self.pending.pop_front();
                        }
                        self.pending.push_back(c);
                    }
                    if self.wait_key && !au.keyframe {
                        continue;
                    }
                    self.wait_key = false;
                    if !self.decode(&mut decoder, &au) {
                        return;
                    }
                }
                Job::Gap => {
                    if decoder.send_eof().is_ok() {
                        self.drain(&mut decoder);
                    }
                    decoder.flush();
                    self.restart();
                }
                Job::End => break,
            }
        }
        // Drain what the decoder still holds (B-frame reordering), then end every rung.
        if decoder.send_eof().is_ok() {
            self.drain(&mut decoder);
        }
        for r in &self.rungs {
            let _ = r.send(RungJob::End);
        }
    }

    /// Input was lost or the session changed: every rung restarts at the next cut.
    fn restart(&mut self) {
        self.pending.clear();
        if let Some(k) = self.keyframes.as_mut() {
            k.reset();
        }
        self.received.clear();
        self.wait_key = true;
        self.started = false;
        for r in &self.rungs {
            let _ = r.send(RungJob::Gap);
        }
    }

    /// False when every rung has gone.
    fn decode(&mut self, decoder: &mut ffmpeg::decoder::Video, au: &AccessUnit) -> bool {
        let mut pkt = ffmpeg::Packet::copy(&au.data);
        pkt.set_pts(Some(au.pts));
        pkt.set_dts(Some(au.dts));
        if au.keyframe {
            pkt.set_flags(ffmpeg::packet::Flags::KEY);
        }
        if self.received.len() >= LOOKUP {
            self.received.pop_front();
        }
        self.received.push_back((au.pts, au.received));
        if let Err(e) = decoder.send_packet(&pkt) {
            self.metrics.transcode_errors.inc();
            tracing::debug!(stream = %self.stream, error = %e, "decoder refused a packet");
        }
        self.drain(decoder)
    }

    fn drain(&mut self, decoder: &mut ffmpeg::decoder::Video) -> bool {
        loop {
            let mut frame = ffmpeg::frame::Video::empty();
            if decoder.receive_frame(&mut frame).is_err() {
                return true;
            }
            let Some(pts) = frame.timestamp().or(frame.pts()) else {
                continue;
            };
            if !self.frame(frame, pts) {
                return false;
            }
        }
    }

    fn frame(&mut self, frame: ffmpeg::frame::Video, pts: i64) -> bool {
        let times = FrameTimes {
            received: take_by_pts(&mut self.received, pts).unwrap_or_else(Instant::now),
            decoded: Instant::now(),
        };
        let mut opened = None;
        while self.pending.front().is_some_and(|c| c.at <= pts) {
            opened = self.pending.pop_front();
        }
        let cut = opened.map(|c| c.segment());
        if cut.is_none() && !self.started {
            return true;
        }
        let refresh = self
            .keyframes
            .as_mut()
            .is_some_and(|k| k.refresh(pts, opened.map(|c| c.at)));
        self.started = true;
        if self.rebase {
            self.rebase = false;
            self.offset = self
                .last_out
                .map_or(0, |last| last + self.frame_ticks - pts);
        }
        let out_pts = pts + self.offset;
        if self.last_out.is_some_and(|last| out_pts <= last) {
            return true; // not after the previous frame: an encoder cannot take it
        }
        self.last_out = Some(out_pts);
        let n = self.rungs.len();
        let mut alive = 0;
        let mut frame = Some(frame);
        let mut scaled = Vec::new();
        if let Some(g) = self.graph.as_mut() {
            let Some(mut f) = frame.take() else {
                return true;
            };
            f.set_pts(Some(out_pts));
            match g.run(&self.stream, &f) {
                Some(out) => scaled = out,
                None => {
                    self.metrics.transcode_errors.inc();
                    return true;
                }
            }
        }
        for (i, r) in self.rungs.iter().enumerate() {
            let f = if self.graph.is_some() {
                scaled.get_mut(i).and_then(Option::take)
            } else if i + 1 == n {
                frame.take()
            } else {
                frame.as_ref().and_then(share)
            };
            let Some(f) = f else { continue };
            let job = RungJob::Frame {
                frame: f,
                pts: out_pts,
                cut,
                refresh,
                times,
            };
            if r.send(job).is_ok() {
                alive += 1;
            }
        }
        alive > 0
    }
}
