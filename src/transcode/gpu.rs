//! The GPU frame path for NVENC nodes: decode on the GPU, scale every rung in
//! one libavfilter graph with `scale_cuda`, encode from CUDA frames, so the
//! CPU never touches a pixel (NVENC fed from system memory spends the CPU on
//! decode and scale long before the encoder is busy).
//!
//! What is here: the probe (a real CUDA device and the filters the graph
//! needs) and the graph's description (pure, tested as exact text). The
//! frame path itself is not wired yet: on a GPU node frames are still
//! decoded and scaled on the CPU and uploaded by NVENC (logged at start).

use ffmpeg_next as ffmpeg;

use super::plan::Rung;

/// The libavfilter graph that scales CUDA frames from the decoder to every
/// rung: `[in]` is the decoder's output, `[outN]` feeds rung N's encoder.
pub fn scale_graph(rungs: &[Rung]) -> String {
    let scale = |i: usize, r: &Rung, input: &str| {
        format!(
            "{input}scale_cuda=w={}:h={}:format=yuv420p:interp_algo=bilinear[out{i}]",
            r.width, r.height
        )
    };
    match rungs {
        [] => String::new(),
        [one] => scale(0, one, "[in]"),
        _ => {
            let labels: String = (0..rungs.len()).map(|i| format!("[s{i}]")).collect();
            let mut g = format!("[in]split={}{labels}", rungs.len());
            for (i, r) in rungs.iter().enumerate() {
                g.push(';');
                g.push_str(&scale(i, r, &format!("[s{i}]")));
            }
            g
        }
    }
}

/// The filters the graph needs, all of which Debian's FFmpeg ships.
pub const FILTERS: [&str; 2] = ["split", "scale_cuda"];

/// Whether the GPU frame path could run here: a CUDA device opens and the
/// graph's filters exist.
pub fn probe() -> Result<(), String> {
    for f in FILTERS {
        if ffmpeg::filter::find(f).is_none() {
            return Err(format!("FFmpeg has no {f} filter"));
        }
    }
    let mut device: *mut ffmpeg::ffi::AVBufferRef = std::ptr::null_mut();
    // SAFETY: av_hwdevice_ctx_create writes a new reference into `device` on
    // success (unreferenced right after), and leaves it null on failure.
    let r = unsafe {
        let r = ffmpeg::ffi::av_hwdevice_ctx_create(
            &mut device,
            ffmpeg::ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA,
            std::ptr::null(),
            std::ptr::null_mut(),
            0,
        );
        if !device.is_null() {
            ffmpeg::ffi::av_buffer_unref(&mut device);
        }
        r
    };
    if r < 0 {
        return Err(format!(
            "cannot open a CUDA device: {}",
            ffmpeg::Error::from(r)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rung(name: &str, width: u32, height: u32) -> Rung {
        Rung {
            name: name.into(),
            width,
            height,
            bitrate: 1_000_000,
            max_fps: None,
        }
    }

    #[test]
    fn one_graph_splits_the_decoded_frames_to_every_rung() {
        let g = scale_graph(&[rung("720p", 1280, 720), rung("360p", 640, 360)]);
        assert_eq!(
            g,
            "[in]split=2[s0][s1];\
             [s0]scale_cuda=w=1280:h=720:format=yuv420p:interp_algo=bilinear[out0];\
             [s1]scale_cuda=w=640:h=360:format=yuv420p:interp_algo=bilinear[out1]"
        );
        assert_eq!(
            scale_graph(&[rung("480p", 854, 480)]),
            "[in]scale_cuda=w=854:h=480:format=yuv420p:interp_algo=bilinear[out0]"
        );
        assert_eq!(scale_graph(&[]), "");
    }

    #[test]
    fn the_graph_parses_with_ffmpegs_filters() {
        // scale_cuda's options are checked when the graph is configured on a
        // GPU; here, that FFmpeg knows every filter the graph names.
        ffmpeg::init().unwrap();
        for f in FILTERS {
            assert!(ffmpeg::filter::find(f).is_some(), "no {f} filter");
        }
    }

    #[test]
    fn without_a_gpu_the_probe_says_why() {
        if std::path::Path::new("/dev/nvidia0").exists() {
            return; // a GPU machine: the probe may well succeed
        }
        ffmpeg::init().unwrap();
        let e = probe().unwrap_err();
        assert!(e.contains("CUDA"), "{e}");
    }
}
