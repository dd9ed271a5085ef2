//! The ABR ladder: decode the source once, scale it to every rung, encode
//! every rung with IDRs forced on the stream's shared cut schedule.
//!
//! - [`plan`]: which rungs a source gets (pure).
//! - [`schedule`]: which instants open a segment, with which MSN, for every
//!   rendition of a stream (pure).
//! - [`encoder`]: the x264 and NVENC backends, their option mapping (pure),
//!   the start-up probe and the backend choice.
//! - [`gpu`]: the GPU frame path's CUDA device and NVDEC setup.
//! - [`graph`]: one libavfilter graph per stream scaling to every rung
//!   (`scale_cuda` on the GPU frame path).
//! - [`worker`]: the decode and encode threads of one stream.

pub mod encoder;
pub mod gpu;
pub mod graph;
pub mod plan;
mod rung;
pub mod schedule;
pub mod worker;

use ffmpeg_next as ffmpeg;

/// Whether the GPU frame path can run here: a CUDA device opens
/// ([`gpu`]) and FFmpeg has the scale graph's filters ([`graph`]). On
/// success, the device to share.
pub fn open_gpu_path() -> Result<gpu::CudaDevice, String> {
    graph::check_filters(graph::Scaler::Cuda).map_err(|e| e.to_string())?;
    gpu::CudaDevice::open()
}

/// Initialise FFmpeg once: only errors reach the log (libx264 would
/// otherwise print its statistics for every closed encoder).
pub fn init() -> Result<(), ffmpeg::Error> {
    ffmpeg::init()?;
    ffmpeg::log::set_level(ffmpeg::log::Level::Error);
    Ok(())
}

/// What `castline probe` prints: one line per backend, saying whether a real
/// encoder opened, and why not.
pub fn probe_report() -> Vec<String> {
    if let Err(e) = init() {
        return vec![format!("FFmpeg cannot start: {e}")];
    }
    let mut lines: Vec<String> = [encoder::Backend::Nvenc, encoder::Backend::X264]
        .into_iter()
        .map(|b| match encoder::probe(b) {
            Ok(()) => format!("{:<6} ({}): works", b.label(), b.codec_name()),
            Err(e) => format!("{:<6} ({}): unavailable: {e}", b.label(), b.codec_name()),
        })
        .collect();
    lines.push(match open_gpu_path().map(drop) {
        Ok(()) => "cuda   (NVDEC + scale_cuda): works: with NVENC, frames stay on the GPU".into(),
        Err(e) => format!("cuda   (NVDEC + scale_cuda): unavailable: {e}"),
    });
    lines
}
