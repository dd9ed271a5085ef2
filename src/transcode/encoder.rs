//! Video encoder backends: libx264 on the CPU, h264_nvenc on an NVIDIA GPU.
//!
//! One type for both: a backend is a codec name plus the mapping from a rung
//! to that codec's options (pure, unit-tested), so the rest of the ladder
//! never asks which one runs. The probe opens a real encoder once at start.

use std::sync::Arc;

use ffmpeg_next as ffmpeg;

use super::gpu::CudaDevice;
use super::plan::Rung;
use crate::config::EncoderChoice;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    X264,
    Nvenc,
}

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("FFmpeg has no {0} encoder")]
    Missing(&'static str),
    #[error("{codec} failed to open: {source}{hint}")]
    Open {
        codec: &'static str,
        source: ffmpeg::Error,
        hint: String,
    },
    #[error("encoding failed: {0}")]
    Encode(#[from] ffmpeg::Error),
    #[error("cannot start a transcoder thread: {0}")]
    Thread(std::io::Error),
    /// A test's `CASTLINE_FAULT_RUNG=NAME:0:open`.
    #[error("the encoder of rung {0} was made not to open (CASTLINE_FAULT_RUNG)")]
    Injected(String),
}

/// Where an encoder's input frames live.
#[derive(Clone, Default)]
pub enum FrameInput {
    /// In system memory (decoded and scaled on the CPU, or downloaded).
    #[default]
    System,
    /// On the GPU, as CUDA frames from the scale graph (NVENC only).
    Cuda(Arc<CudaDevice>),
}

impl FrameInput {
    pub fn on_gpu(&self) -> bool {
        matches!(self, FrameInput::Cuda(_))
    }
}

impl std::fmt::Debug for FrameInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.on_gpu() { "cuda" } else { "system" })
    }
}

impl PartialEq for FrameInput {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (FrameInput::System, FrameInput::System) => true,
            (FrameInput::Cuda(a), FrameInput::Cuda(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// An open encoder's extradata (H.264 SPS/PPS, the AAC AudioSpecificConfig:
/// its global headers), copied out; empty if it has none.
pub fn extradata(ctx: &ffmpeg::codec::Context) -> Vec<u8> {
    // SAFETY: the context is open; its extradata lives as long as it does
    // and is copied out here.
    unsafe {
        let c = ctx.as_ptr();
        if (*c).extradata.is_null() || (*c).extradata_size <= 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts((*c).extradata, (*c).extradata_size as usize).to_vec()
        }
    }
}

/// The pixel format an encoder is opened with: CUDA frames for NVENC fed
/// from the GPU, planar YUV 4:2:0 in memory otherwise (libx264 cannot read
/// GPU memory; the scale graph downloads its frames).
pub fn pixel_format(backend: Backend, on_gpu: bool) -> ffmpeg::format::Pixel {
    match (backend, on_gpu) {
        (Backend::Nvenc, true) => ffmpeg::format::Pixel::CUDA,
        _ => ffmpeg::format::Pixel::YUV420P,
    }
}

/// The encoder settings a rung needs, whatever the backend.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderSettings {
    pub width: u32,
    pub height: u32,
    pub bitrate: u64,
    /// Frames per second of the input, for rate control.
    pub fps: f64,
    /// x264: ultrafast..placebo; NVENC: p1..p7.
    pub preset: String,
    pub input: FrameInput,
}

impl EncoderSettings {
    pub fn for_rung(rung: &Rung, fps: f64, preset: &str, input: FrameInput) -> Self {
        EncoderSettings {
            width: rung.width,
            height: rung.height,
            bitrate: rung.bitrate,
            fps,
            preset: preset.to_string(),
            input,
        }
    }

    /// Whether the encoder takes CUDA frames.
    pub fn on_gpu(&self, backend: Backend) -> bool {
        backend == Backend::Nvenc && self.input.on_gpu()
    }
}

impl Backend {
    pub fn codec_name(self) -> &'static str {
        match self {
            Backend::X264 => "libx264",
            Backend::Nvenc => "h264_nvenc",
        }
    }

    /// The label in metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Backend::X264 => "x264",
            Backend::Nvenc => "nvenc",
        }
    }

    /// The codec's options for one rung. Both backends: constant bitrate with
    /// a one-second VBV (so a 1 s segment stays near the declared rate), no
    /// B-frames and no lookahead (a frame leaves the encoder as soon as it is
    /// encoded), no scene-cut keyframes, and a keyframe forced by the cut
    /// schedule comes out as an IDR (`forced-idr`).
    pub fn options(self, s: &EncoderSettings) -> Vec<(&'static str, String)> {
        let rate = s.bitrate.to_string();
        // Keyframes come from the cut schedule; this only bounds a GOP if cuts stop.
        let gop = ((s.fps.max(1.0) * 10.0).round() as u32).to_string();
        let mut o = vec![
            ("b", rate.clone()),
            ("maxrate", rate.clone()),
            ("bufsize", rate),
            ("g", gop),
            ("bf", "0".to_string()),
            ("forced-idr", "1".to_string()),
            ("preset", s.preset.clone()),
            ("profile", "high".to_string()),
        ];
        match self {
            Backend::X264 => o.extend([
                ("tune", "zerolatency".to_string()),
                (
                    "x264-params",
                    "scenecut=0:open-gop=0:rc-lookahead=0".to_string(),
                ),
            ]),
            Backend::Nvenc => o.extend([
                ("tune", "ll".to_string()),
                ("rc", "cbr".to_string()),
                ("zerolatency", "1".to_string()),
                ("delay", "0".to_string()),
                ("no-scenecut", "1".to_string()),
                ("rc-lookahead", "0".to_string()),
            ]),
        }
        o
    }

    /// Open an encoder for `s`, with global headers (SPS/PPS in extradata).
    pub fn open(self, s: &EncoderSettings) -> Result<ffmpeg::encoder::Video, EncoderError> {
        let name = self.codec_name();
        let codec = ffmpeg::encoder::find_by_name(name).ok_or(EncoderError::Missing(name))?;
        let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|source| self.open_error(source))?;
        enc.set_width(s.width);
        enc.set_height(s.height);
        enc.set_format(pixel_format(self, s.on_gpu(self)));
        if let (true, FrameInput::Cuda(device)) = (s.on_gpu(self), &s.input) {
            let frames = device
                .frames(s.width, s.height)
                .map_err(|source| self.open_error(source))?;
            // SAFETY: the context is not open yet; it takes over the new
            // frames context reference and releases it when freed.
            unsafe { (*enc.as_mut_ptr()).hw_frames_ctx = frames };
        }
        enc.set_time_base(ffmpeg::Rational(1, crate::media::VIDEO_TIMESCALE as i32));
        let fps = ffmpeg::Rational::from(s.fps.max(1.0));
        enc.set_frame_rate(Some(fps));
        enc.set_flags(ffmpeg::codec::Flags::GLOBAL_HEADER);
        let mut dict = ffmpeg::Dictionary::new();
        for (k, v) in self.options(s) {
            dict.set(k, &v);
        }
        enc.open_as_with(codec, dict)
            .map_err(|source| self.open_error(source))
    }

    fn open_error(self, source: ffmpeg::Error) -> EncoderError {
        let hint = match self {
            // FFmpeg says why only in its log ("Cannot load libcuda.so.1").
            Backend::Nvenc if !nvidia_device_present() => {
                " (no NVIDIA device: /dev/nvidia0 is absent, so libcuda cannot load)".to_string()
            }
            _ => String::new(),
        };
        EncoderError::Open {
            codec: self.codec_name(),
            source,
            hint,
        }
    }
}

/// Whether this machine has an NVIDIA device node (the GPU tests' guard too).
pub(crate) fn nvidia_device_present() -> bool {
    std::path::Path::new("/dev/nvidia0").exists()
}

/// Open (and drop) a small real encoder: the only reliable test that a
/// backend works on this machine.
pub fn probe(backend: Backend) -> Result<(), EncoderError> {
    let s = EncoderSettings {
        width: 640,
        height: 360,
        bitrate: 500_000,
        fps: 30.0,
        preset: match backend {
            Backend::X264 => "ultrafast".into(),
            Backend::Nvenc => "p1".into(),
        },
        input: FrameInput::System,
    };
    backend.open(&s).map(drop)
}

/// The preset each backend uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presets {
    pub x264: String,
    pub nvenc: String,
}

impl Presets {
    pub fn get(&self, backend: Backend) -> &str {
        match backend {
            Backend::X264 => &self.x264,
            Backend::Nvenc => &self.nvenc,
        }
    }
}

/// Open the encoder of one rung on `backend`, taking frames from `input`;
/// when NVENC cannot open another session (a consumer GPU allows only a
/// few), the rung runs on libx264 instead, from system memory. Returns the
/// encoder, its settings and the backend it runs on.
pub fn open_rung(
    backend: Backend,
    presets: &Presets,
    rung: &Rung,
    fps: f64,
    input: &FrameInput,
) -> Result<(ffmpeg::encoder::Video, EncoderSettings, Backend), EncoderError> {
    let input = if backend == Backend::Nvenc {
        input.clone()
    } else {
        FrameInput::System
    };
    let settings = EncoderSettings::for_rung(rung, fps, presets.get(backend), input);
    match backend.open(&settings) {
        Ok(enc) => Ok((enc, settings, backend)),
        Err(e) if backend == Backend::Nvenc => {
            tracing::warn!(rung = %rung.name, error = %e, "NVENC cannot open another session; this rung runs on libx264");
            let settings = EncoderSettings::for_rung(
                rung,
                fps,
                presets.get(Backend::X264),
                FrameInput::System,
            );
            let enc = Backend::X264.open(&settings)?;
            Ok((enc, settings, Backend::X264))
        }
        Err(e) => Err(e),
    }
}

/// Which backend the ladder runs on, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub backend: Backend,
    /// Why NVENC is not used, when `auto` fell back.
    pub fallback_reason: Option<String>,
}

/// Choose the backend for `choice` from the probe results (pure, so the
/// rules are tested without a GPU).
pub fn select(
    choice: EncoderChoice,
    nvenc: Result<(), String>,
    x264: Result<(), String>,
) -> Result<Selection, String> {
    match choice {
        EncoderChoice::Nvenc => nvenc
            .map(|()| Selection {
                backend: Backend::Nvenc,
                fallback_reason: None,
            })
            .map_err(|e| format!("transcode.encoder = \"nvenc\", but NVENC cannot run here: {e}")),
        EncoderChoice::X264 => x264
            .map(|()| Selection {
                backend: Backend::X264,
                fallback_reason: None,
            })
            .map_err(|e| format!("transcode.encoder = \"x264\", but libx264 cannot run: {e}")),
        EncoderChoice::Auto => match nvenc {
            Ok(()) => Ok(Selection {
                backend: Backend::Nvenc,
                fallback_reason: None,
            }),
            Err(why) => x264
                .map(|()| Selection {
                    backend: Backend::X264,
                    fallback_reason: Some(why.clone()),
                })
                .map_err(|e| format!("no video encoder works: NVENC: {why}; libx264: {e}")),
        },
    }
}

/// Probe what `choice` needs and select the backend.
pub fn probe_and_select(choice: EncoderChoice) -> Result<Selection, String> {
    let nvenc = || probe(Backend::Nvenc).map_err(|e| e.to_string());
    let x264 = || probe(Backend::X264).map_err(|e| e.to_string());
    match choice {
        EncoderChoice::X264 => select(choice, Err("not tried".into()), x264()),
        EncoderChoice::Nvenc => select(choice, nvenc(), Err("not tried".into())),
        EncoderChoice::Auto => {
            let n = nvenc();
            let x = if n.is_ok() { Ok(()) } else { x264() };
            select(choice, n, x)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EncoderSettings {
        EncoderSettings {
            width: 1280,
            height: 720,
            bitrate: 3_000_000,
            fps: 30.0,
            preset: "veryfast".into(),
            input: FrameInput::System,
        }
    }

    #[test]
    fn only_nvenc_fed_from_the_gpu_takes_cuda_frames() {
        use ffmpeg::format::Pixel;
        assert_eq!(pixel_format(Backend::Nvenc, true), Pixel::CUDA);
        assert_eq!(pixel_format(Backend::Nvenc, false), Pixel::YUV420P);
        assert_eq!(pixel_format(Backend::X264, true), Pixel::YUV420P);
        assert_eq!(pixel_format(Backend::X264, false), Pixel::YUV420P);
        assert!(!settings().on_gpu(Backend::Nvenc));
        assert_eq!(format!("{:?}", FrameInput::System), "system");
    }

    fn get<'a>(o: &'a [(&'static str, String)], k: &str) -> Option<&'a str> {
        o.iter().find(|(key, _)| *key == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn x264_is_cbr_zerolatency_without_scene_cuts() {
        let o = Backend::X264.options(&settings());
        assert_eq!(get(&o, "b"), Some("3000000"));
        assert_eq!(get(&o, "maxrate"), Some("3000000"));
        assert_eq!(get(&o, "bufsize"), Some("3000000"));
        assert_eq!(get(&o, "tune"), Some("zerolatency"));
        assert_eq!(get(&o, "preset"), Some("veryfast"));
        assert_eq!(get(&o, "forced-idr"), Some("1"));
        assert_eq!(get(&o, "bf"), Some("0"));
        assert!(get(&o, "x264-params").unwrap().contains("scenecut=0"));
        assert_eq!(get(&o, "g"), Some("300"));
    }

    #[test]
    fn nvenc_is_low_latency_cbr_with_forced_idr() {
        let mut s = settings();
        s.preset = "p4".into();
        let o = Backend::Nvenc.options(&s);
        assert_eq!(get(&o, "rc"), Some("cbr"));
        assert_eq!(get(&o, "tune"), Some("ll"));
        assert_eq!(get(&o, "preset"), Some("p4"));
        assert_eq!(get(&o, "forced-idr"), Some("1"));
        assert_eq!(get(&o, "zerolatency"), Some("1"));
        assert_eq!(get(&o, "no-scenecut"), Some("1"));
        assert_eq!(get(&o, "bf"), Some("0"));
        assert_eq!(get(&o, "maxrate"), Some("3000000"));
        assert_eq!(Backend::Nvenc.codec_name(), "h264_nvenc");
    }

    #[test]
    fn auto_falls_back_to_x264_with_the_reason() {
        let s = select(EncoderChoice::Auto, Err("no GPU".into()), Ok(())).unwrap();
        assert_eq!(s.backend, Backend::X264);
        assert_eq!(s.fallback_reason.as_deref(), Some("no GPU"));
        let s = select(EncoderChoice::Auto, Ok(()), Err("x".into())).unwrap();
        assert_eq!(s.backend, Backend::Nvenc);
    }

    #[test]
    fn a_rung_nvenc_cannot_open_comes_up_on_x264_with_x264s_settings() {
        // The real path: h264_nvenc fails to open here as it does when a GPU
        // has no session left, and the rung comes up on libx264.
        if nvidia_device_present() {
            eprintln!("an NVIDIA device is present: this check is for machines without one");
            return;
        }
        crate::transcode::init().unwrap();
        let presets = Presets {
            x264: "veryfast".into(),
            nvenc: "p4".into(),
        };
        let rung = crate::transcode::plan::Rung {
            name: "360p".into(),
            width: 640,
            height: 360,
            bitrate: 700_000,
            max_fps: None,
        };
        let (_, settings, backend) =
            open_rung(Backend::Nvenc, &presets, &rung, 30.0, &FrameInput::System)
                .expect("the x264 fallback opens");
        assert_eq!(backend, Backend::X264);
        assert_eq!(settings.preset, "veryfast", "x264's preset, not NVENC's");
        assert!(matches!(settings.input, FrameInput::System));
        assert_eq!(
            (settings.width, settings.height, settings.bitrate),
            (640, 360, 700_000)
        );
    }

    #[test]
    fn nvenc_required_but_missing_refuses() {
        let e = select(EncoderChoice::Nvenc, Err("no GPU".into()), Ok(())).unwrap_err();
        assert!(e.contains("nvenc") && e.contains("no GPU"), "{e}");
        assert!(select(EncoderChoice::Auto, Err("a".into()), Err("b".into())).is_err());
    }
}
