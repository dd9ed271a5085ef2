//! One slate clip, encoded once per stream shape: a closed GOP of the slate
//! picture (libx264, at the source's size and frame rate; the ladder then
//! encodes it again at each rung's size with its own settings) and a few
//! frames of AAC silence at the source's rate and channel count. Looped by
//! [`super::feed::Feed`].

use std::path::Path;

use bytes::Bytes;
use ffmpeg_next as ffmpeg;

use super::card::{card, Planes};
use super::SlateError;
use crate::media::{annexb, MediaInfo, VIDEO_TIMESCALE};
use crate::transcode::encoder::{Backend, EncoderSettings, FrameInput};

/// What a clip must match: the tracks of the stream it stands in for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Width, height, frames per second.
    pub video: Option<(u32, u32, f64)>,
    /// Sample rate, channels.
    pub audio: Option<(u32, u8)>,
}

impl Shape {
    /// The shape of `info`'s tracks (frame rate from the SPS, else 30;
    /// held to 10..=60 fps).
    pub fn of(info: &MediaInfo) -> Shape {
        Shape {
            video: info.video.as_ref().map(|v| {
                let fps = v.frame_rate.filter(|f| f.is_finite()).unwrap_or(30.0);
                (v.width, v.height, fps.clamp(10.0, 60.0))
            }),
            audio: info
                .audio
                .as_ref()
                .map(|a| (a.sample_rate, a.channels.max(1))),
        }
    }
}

/// One coded video frame of the clip, timestamps in 90 kHz from 0.
#[derive(Debug, Clone)]
pub struct ClipFrame {
    pub pts: i64,
    pub dts: i64,
    pub keyframe: bool,
    /// AVCC (length-prefixed) NAL units.
    pub data: Bytes,
}

#[derive(Debug)]
pub struct Clip {
    /// The slate's tracks (its SPS/PPS and AudioSpecificConfig).
    pub info: MediaInfo,
    /// One GOP, the first frame an IDR.
    pub video: Vec<ClipFrame>,
    /// The GOP's length in 90 kHz ticks: each pass is shifted by it.
    pub video_duration: i64,
    /// Raw AAC frames of silence, 1,024 samples each.
    pub audio: Vec<Bytes>,
    pub audio_rate: u32,
}

/// Seconds in one pass of the clip's video (one GOP).
const GOP_SECONDS: f64 = 1.0;
/// The slate is a still picture: a low rate keeps it sharp.
const VIDEO_BITRATE: u64 = 1_000_000;

impl Clip {
    /// Encode the clip for `shape`, showing `image` (any picture FFmpeg
    /// reads, scaled to the source's size) or the built-in card.
    pub fn build(shape: Shape, image: Option<&Path>) -> Result<Clip, SlateError> {
        let mut info = MediaInfo {
            video: None,
            audio: None,
            declared_bitrate: Some(VIDEO_BITRATE),
        };
        let (mut video, mut video_duration) = (Vec::new(), 0);
        if let Some((w, h, fps)) = shape.video {
            let planes = match image {
                Some(path) => load_image(path, w, h)?,
                None => card(w, h),
            };
            let (config, frames, duration) = encode_video(&planes, fps)?;
            info.video = Some(config);
            video = frames;
            video_duration = duration;
        }
        let (mut audio, mut audio_rate) = (Vec::new(), 48_000);
        if let Some((rate, channels)) = shape.audio {
            let silence = super::silence::encode(rate, channels)?;
            info.audio = Some(silence.config);
            audio = silence.frames;
            audio_rate = rate;
        }
        Ok(Clip {
            info,
            video,
            video_duration,
            audio,
            audio_rate,
        })
    }
}

/// Read the first picture of `path` and scale it to `width × height`.
pub fn load_image(path: &Path, width: u32, height: u32) -> Result<Planes, SlateError> {
    let bad = |why: String| SlateError::Image(path.to_path_buf(), why);
    let mut input = ffmpeg::format::input(path).map_err(|e| bad(e.to_string()))?;
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .ok_or_else(|| bad("no picture in it".into()))?;
    let index = stream.index();
    let ctx = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
        .map_err(|e| bad(e.to_string()))?;
    let mut decoder = ctx.decoder().video().map_err(|e| bad(e.to_string()))?;
    let mut frame = ffmpeg::frame::Video::empty();
    let mut got = false;
    for (s, packet) in input.packets() {
        if s.index() != index {
            continue;
        }
        decoder
            .send_packet(&packet)
            .map_err(|e| bad(e.to_string()))?;
        if decoder.receive_frame(&mut frame).is_ok() {
            got = true;
            break;
        }
    }
    if !got {
        let _ = decoder.send_eof();
        got = decoder.receive_frame(&mut frame).is_ok();
    }
    if !got {
        return Err(bad("no picture could be decoded".into()));
    }
    let mut scaler = ffmpeg::software::scaling::Context::get(
        frame.format(),
        frame.width(),
        frame.height(),
        ffmpeg::format::Pixel::YUV420P,
        width,
        height,
        ffmpeg::software::scaling::Flags::BICUBIC,
    )
    .map_err(|e| bad(e.to_string()))?;
    let mut out = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, width, height);
    scaler
        .run(&frame, &mut out)
        .map_err(|e| bad(e.to_string()))?;
    Ok(planes_of(&out))
}

/// Copy a YUV 4:2:0 frame's planes out, without their padding.
fn planes_of(f: &ffmpeg::frame::Video) -> Planes {
    let (w, h) = (f.width() as usize, f.height() as usize);
    let plane = |i: usize, pw: usize, ph: usize| {
        let (data, stride) = (f.data(i), f.stride(i));
        (0..ph)
            .flat_map(|r| data[r * stride..r * stride + pw].iter().copied())
            .collect::<Vec<u8>>()
    };
    Planes {
        width: w as u32,
        height: h as u32,
        y: plane(0, w, h),
        u: plane(1, w.div_ceil(2), h.div_ceil(2)),
        v: plane(2, w.div_ceil(2), h.div_ceil(2)),
    }
}

/// A YUV 4:2:0 frame holding `p`.
fn frame_of(p: &Planes) -> ffmpeg::frame::Video {
    let mut f = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, p.width, p.height);
    let (w, h) = (p.width as usize, p.height as usize);
    for (i, src, pw, ph) in [
        (0, &p.y, w, h),
        (1, &p.u, w.div_ceil(2), h.div_ceil(2)),
        (2, &p.v, w.div_ceil(2), h.div_ceil(2)),
    ] {
        let stride = f.stride(i);
        let dst = f.data_mut(i);
        for r in 0..ph {
            dst[r * stride..r * stride + pw].copy_from_slice(&src[r * pw..(r + 1) * pw]);
        }
    }
    f
}

/// One GOP of `p` at `fps`: its track config, frames and length (90 kHz).
fn encode_video(
    p: &Planes,
    fps: f64,
) -> Result<(crate::media::AvcConfig, Vec<ClipFrame>, i64), SlateError> {
    let settings = EncoderSettings {
        width: p.width,
        height: p.height,
        bitrate: VIDEO_BITRATE,
        fps,
        preset: "ultrafast".into(),
        input: FrameInput::System,
    };
    let mut enc = Backend::X264
        .open(&settings)
        .map_err(|e| SlateError::Encode(e.to_string()))?;
    let extradata = crate::transcode::encoder::extradata(&enc);
    let config = annexb::avc_config(&extradata).map_err(|e| SlateError::Encode(e.to_string()))?;
    let count = (fps * GOP_SECONDS).round().max(1.0) as i64;
    let tick = |i: i64| i * VIDEO_TIMESCALE as i64 / count;
    let mut frame = frame_of(p);
    let mut frames = Vec::new();
    let collect = |enc: &mut ffmpeg::encoder::Video, frames: &mut Vec<ClipFrame>| {
        let mut pkt = ffmpeg::Packet::empty();
        while enc.receive_packet(&mut pkt).is_ok() {
            if let (Some(data), Some(pts)) = (pkt.data(), pkt.pts()) {
                let (avcc, idr) = annexb::to_avcc(data);
                frames.push(ClipFrame {
                    pts,
                    dts: pkt.dts().unwrap_or(pts),
                    keyframe: idr,
                    data: avcc,
                });
            }
        }
    };
    for i in 0..count {
        frame.set_pts(Some(tick(i)));
        frame.set_kind(if i == 0 {
            ffmpeg::picture::Type::I
        } else {
            ffmpeg::picture::Type::None
        });
        enc.send_frame(&frame)
            .map_err(|e| SlateError::Encode(e.to_string()))?;
        collect(&mut enc, &mut frames);
    }
    enc.send_eof()
        .map_err(|e| SlateError::Encode(e.to_string()))?;
    collect(&mut enc, &mut frames);
    if frames.len() != count as usize
        || !frames[0].keyframe
        || frames[1..].iter().any(|f| f.keyframe)
    {
        return Err(SlateError::Encode(format!(
            "expected one GOP of {count} frames opening on an IDR, got {}",
            frames.len()
        )));
    }
    Ok((config, frames, tick(count)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clip_is_one_closed_gop_of_the_card_and_aac_silence_of_the_source_shape() {
        crate::transcode::init().unwrap();
        let shape = Shape {
            video: Some((320, 180, 25.0)),
            audio: Some((44_100, 2)),
        };
        let clip = Clip::build(shape, None).unwrap();
        let v = clip.info.video.as_ref().unwrap();
        assert_eq!((v.width, v.height), (320, 180));
        let a = clip.info.audio.as_ref().unwrap();
        assert_eq!((a.sample_rate, a.channels, a.object_type), (44_100, 2, 2));
        assert_eq!(clip.video.len(), 25);
        assert!(clip.video[0].keyframe);
        assert_eq!(clip.video_duration, 90_000);
        let pts: Vec<i64> = clip.video.iter().map(|f| f.pts).collect();
        assert_eq!(pts[1], 3600);
        assert!(pts.windows(2).all(|w| w[1] > w[0]));
        assert!(!clip.audio.is_empty() && clip.audio_rate == 44_100);
        // A still picture costs little after its IDR.
        let rest: usize = clip.video[1..].iter().map(|f| f.data.len()).sum();
        assert!(rest < clip.video[0].data.len(), "{rest}");
    }

    #[test]
    fn an_image_that_is_not_a_picture_is_a_clear_error() {
        crate::transcode::init().unwrap();
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), b"not a picture").unwrap();
        let e = load_image(f.path(), 64, 36).unwrap_err();
        assert!(
            e.to_string().contains(&f.path().display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn an_image_is_scaled_to_the_source_size() {
        crate::transcode::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("slate.png");
        // A 32x16 solid red PNG, written by ffmpeg's own encoder.
        let ok = std::process::Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "color=c=red:s=32x16",
                "-frames:v",
                "1",
            ])
            .arg(&png)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let p = load_image(&png, 64, 36).unwrap();
        assert_eq!((p.width, p.height, p.y.len()), (64, 36, 64 * 36));
        // Red in BT.601 limited range: Y about 81, Cr about 240.
        assert!(
            p.y.iter().all(|&y| (70..=95).contains(&y)),
            "{:?}",
            &p.y[..8]
        );
        assert!(p.v.iter().all(|&v| v > 220), "{:?}", &p.v[..8]);
    }
}
