//! One libavfilter graph per stream that scales each decoded frame to every
//! rung at once: the GPU frame path's scaler (`scale_cuda`, frames never
//! leave the GPU). The same graph runs with the software `scale` filter, so
//! everything but the CUDA filters is exercised on any machine.
//!
//! - [`describe`] writes the graph's text (pure, tested as exact text).
//! - [`ScaleGraph`] builds it for the frames a decoder gives (CUDA or system
//!   memory, any size), takes one frame in and hands one frame out per rung.

use ffmpeg_next as ffmpeg;
use ffmpeg_next::ffi;

use super::gpu::CudaDevice;
use crate::media::VIDEO_TIMESCALE;

/// Which filter scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaler {
    /// `scale_cuda` on CUDA frames (the GPU frame path).
    Cuda,
    /// libswscale through the `scale` filter, in system memory.
    Software,
}

/// What one rung's encoder takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    pub width: u32,
    pub height: u32,
    /// The encoder takes frames in system memory although the graph scales
    /// on the GPU (an x264 rung when NVENC ran out of sessions): the scaled
    /// frame is downloaded.
    pub download: bool,
}

/// The filters a graph may name, for the probe.
pub const CUDA_FILTERS: [&str; 4] = ["split", "scale_cuda", "hwupload_cuda", "hwdownload"];

/// The graph's text: `[in]` is the decoder's output and `[outN]` feeds rung
/// N. `upload`: the decoder gave frames in system memory (a stream NVDEC
/// cannot decode), which a CUDA graph first uploads.
pub fn describe(outputs: &[Output], scaler: Scaler, upload: bool) -> String {
    let scale = |o: &Output| match scaler {
        Scaler::Cuda => {
            let mut s = format!(
                "scale_cuda=w={}:h={}:format=yuv420p:interp_algo=bilinear",
                o.width, o.height
            );
            if o.download {
                s.push_str(",hwdownload,format=yuv420p");
            }
            s
        }
        Scaler::Software => format!(
            "scale=w={}:h={}:flags=bilinear,format=yuv420p",
            o.width, o.height
        ),
    };
    let head = if upload && scaler == Scaler::Cuda {
        "[in]hwupload_cuda,"
    } else {
        "[in]"
    };
    match outputs {
        [] => String::new(),
        [one] => format!("{head}{}[out0]", scale(one)),
        _ => {
            let labels: String = (0..outputs.len()).map(|i| format!("[s{i}]")).collect();
            let mut g = format!("{head}split={}{labels}", outputs.len());
            for (i, o) in outputs.iter().enumerate() {
                g.push_str(&format!(";[s{i}]{}[out{i}]", scale(o)));
            }
            g
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("FFmpeg has no {0} filter")]
    MissingFilter(&'static str),
    #[error("cannot build the scale graph ({graph}): {source}")]
    Build {
        graph: String,
        source: ffmpeg::Error,
    },
    #[error("scaling failed: {0}")]
    Filter(ffmpeg::Error),
}

/// A configured graph for one input shape (format and size).
pub struct ScaleGraph {
    graph: ffmpeg::filter::Graph,
    /// The sinks' names, `out0`.. (looked up per frame, made once).
    sinks: Vec<String>,
    input: (i32, u32, u32),
}

impl ScaleGraph {
    /// Build the graph for frames shaped like `first`. A CUDA frame brings
    /// its own frames context; `device` is needed to upload system frames or
    /// when any filter works on the GPU.
    pub fn new(
        first: &ffmpeg::frame::Video,
        outputs: &[Output],
        scaler: Scaler,
        device: Option<&CudaDevice>,
    ) -> Result<ScaleGraph, GraphError> {
        let input = shape(first);
        let cuda_input = input.0 == ffi::AVPixelFormat::AV_PIX_FMT_CUDA as i32;
        let text = describe(outputs, scaler, !cuda_input);
        let err = |source| GraphError::Build {
            graph: text.clone(),
            source,
        };
        let mut graph = ffmpeg::filter::Graph::new();
        let buffer = ffmpeg::filter::find("buffer").ok_or(GraphError::MissingFilter("buffer"))?;
        let sink =
            ffmpeg::filter::find("buffersink").ok_or(GraphError::MissingFilter("buffersink"))?;
        let args = format!(
            "video_size={}x{}:pix_fmt={}:time_base=1/{VIDEO_TIMESCALE}:pixel_aspect=1/1",
            input.1, input.2, input.0
        );
        let mut src = graph.add(&buffer, "in", &args).map_err(err)?;
        // SAFETY: `first` is a valid frame; its hw_frames_ctx (CUDA frames
        // only) is referenced by the buffer source, the parameters are freed.
        unsafe {
            let frames = (*first.as_ptr()).hw_frames_ctx;
            if !frames.is_null() {
                let par = ffi::av_buffersrc_parameters_alloc();
                if par.is_null() {
                    return Err(err(ffmpeg::Error::Bug));
                }
                (*par).format = input.0;
                (*par).hw_frames_ctx = frames;
                let r = ffi::av_buffersrc_parameters_set(src.as_mut_ptr(), par);
                ffi::av_free(par.cast());
                if r < 0 {
                    return Err(err(ffmpeg::Error::from(r)));
                }
            }
        }
        let sinks: Vec<String> = (0..outputs.len()).map(|i| format!("out{i}")).collect();
        for name in &sinks {
            graph.add(&sink, name, "").map_err(err)?;
        }
        let mut parser = graph.output("in", 0).map_err(err)?;
        for name in &sinks {
            parser = parser.input(name, 0).map_err(err)?;
        }
        parser.parse(&text).map_err(err)?;
        if let Some(device) = device {
            // SAFETY: the graph owns its filters; each gets its own reference
            // to the device (hwupload_cuda needs one, the others ignore it),
            // released with the filter.
            unsafe {
                let g = graph.as_mut_ptr();
                for i in 0..(*g).nb_filters as usize {
                    let f = *(*g).filters.add(i);
                    if (*f).hw_device_ctx.is_null() {
                        (*f).hw_device_ctx = ffi::av_buffer_ref(device.as_ptr());
                    }
                }
            }
        }
        graph.validate().map_err(err)?;
        Ok(ScaleGraph {
            graph,
            sinks,
            input,
        })
    }

    /// Whether `frame` has the shape this graph was built for.
    pub fn fits(&self, frame: &ffmpeg::frame::Video) -> bool {
        shape(frame) == self.input
    }

    /// Scale one frame to every rung: entry N is rung N's frame, carrying
    /// the input's timestamp.
    pub fn run(
        &mut self,
        frame: &ffmpeg::frame::Video,
    ) -> Result<Vec<Option<ffmpeg::frame::Video>>, GraphError> {
        let mut src = self
            .graph
            .get("in")
            .ok_or(GraphError::Filter(ffmpeg::Error::Bug))?;
        src.source().add(frame).map_err(GraphError::Filter)?;
        let mut out = Vec::with_capacity(self.sinks.len());
        for name in &self.sinks {
            let mut sink = self
                .graph
                .get(name)
                .ok_or(GraphError::Filter(ffmpeg::Error::Bug))?;
            let mut f = ffmpeg::frame::Video::empty();
            out.push(sink.sink().frame(&mut f).is_ok().then_some(f));
        }
        Ok(out)
    }
}

fn shape(frame: &ffmpeg::frame::Video) -> (i32, u32, u32) {
    // SAFETY: reading the format field of a valid frame.
    let format = unsafe { (*frame.as_ptr()).format };
    (format, frame.width(), frame.height())
}

/// Check that FFmpeg has every filter `scaler` needs.
pub fn check_filters(scaler: Scaler) -> Result<(), GraphError> {
    let needed: &[&'static str] = match scaler {
        Scaler::Cuda => &CUDA_FILTERS,
        Scaler::Software => &["split", "scale", "format"],
    };
    for f in needed {
        if ffmpeg::filter::find(f).is_none() {
            return Err(GraphError::MissingFilter(f));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(width: u32, height: u32) -> Output {
        Output {
            width,
            height,
            download: false,
        }
    }

    #[test]
    fn one_cuda_graph_splits_the_decoded_frames_to_every_rung() {
        assert_eq!(
            describe(&[out(1280, 720), out(640, 360)], Scaler::Cuda, false),
            "[in]split=2[s0][s1];\
             [s0]scale_cuda=w=1280:h=720:format=yuv420p:interp_algo=bilinear[out0];\
             [s1]scale_cuda=w=640:h=360:format=yuv420p:interp_algo=bilinear[out1]"
        );
        assert_eq!(
            describe(&[out(854, 480)], Scaler::Cuda, false),
            "[in]scale_cuda=w=854:h=480:format=yuv420p:interp_algo=bilinear[out0]"
        );
        assert_eq!(describe(&[], Scaler::Cuda, false), "");
    }

    #[test]
    fn system_frames_are_uploaded_and_an_x264_rung_gets_its_frame_downloaded() {
        let x264 = Output {
            download: true,
            ..out(640, 360)
        };
        assert_eq!(
            describe(&[out(1280, 720), x264], Scaler::Cuda, true),
            "[in]hwupload_cuda,split=2[s0][s1];\
             [s0]scale_cuda=w=1280:h=720:format=yuv420p:interp_algo=bilinear[out0];\
             [s1]scale_cuda=w=640:h=360:format=yuv420p:interp_algo=bilinear,hwdownload,format=yuv420p[out1]"
        );
        // Software scaling neither uploads nor downloads.
        assert_eq!(
            describe(&[x264], Scaler::Software, true),
            "[in]scale=w=640:h=360:flags=bilinear,format=yuv420p[out0]"
        );
    }

    #[test]
    fn ffmpeg_has_every_filter_the_graphs_name() {
        ffmpeg::init().unwrap();
        check_filters(Scaler::Cuda).unwrap();
        check_filters(Scaler::Software).unwrap();
    }

    fn frame(width: u32, height: u32, pts: i64) -> ffmpeg::frame::Video {
        let mut f = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, width, height);
        for plane in 0..3 {
            f.data_mut(plane).fill(0x80);
        }
        f.set_pts(Some(pts));
        f
    }

    #[test]
    fn a_software_graph_gives_every_rung_its_size_with_the_inputs_timestamp() {
        ffmpeg::init().unwrap();
        let outputs = [out(640, 360), out(426, 240)];
        let first = frame(1280, 720, 0);
        let mut g = ScaleGraph::new(&first, &outputs, Scaler::Software, None).unwrap();
        for n in 0..5 {
            let f = frame(1280, 720, n * 3000);
            assert!(g.fits(&f));
            let got = g.run(&f).unwrap();
            assert_eq!(got.len(), 2);
            for (o, f) in outputs.iter().zip(&got) {
                let f = f.as_ref().expect("one frame out per frame in");
                assert_eq!((f.width(), f.height()), (o.width, o.height));
                assert_eq!(f.format(), ffmpeg::format::Pixel::YUV420P);
                assert_eq!(f.pts(), Some(n * 3000));
            }
        }
        assert!(!g.fits(&frame(854, 480, 0)), "a new size needs a new graph");
    }

    #[test]
    fn a_cuda_graph_without_a_gpu_fails_to_build_with_the_graph_in_the_error() {
        if crate::transcode::encoder::nvidia_device_present() {
            return;
        }
        ffmpeg::init().unwrap();
        let e = ScaleGraph::new(&frame(1280, 720, 0), &[out(640, 360)], Scaler::Cuda, None)
            .err()
            .expect("no CUDA device: hwupload_cuda cannot run");
        assert!(e.to_string().contains("hwupload_cuda"), "{e}");
    }
}
