//! The GPU frame path for NVENC nodes: decode on the GPU (NVDEC), scale every
//! rung in one libavfilter graph with `scale_cuda` ([`super::graph`]), encode
//! from CUDA frames, so the CPU never touches a pixel (NVENC fed from system
//! memory spends the CPU on decode and scale long before the encoder is busy).
//!
//! Here: the CUDA device every stream shares, the frames contexts NVENC
//! encoders are opened with, the decoder's hardware setup, and the probe.

use ffmpeg_next as ffmpeg;
use ffmpeg_next::ffi;

/// A CUDA device context, opened once at start and shared by every stream
/// (decoders, graphs and encoders each take their own reference).
pub struct CudaDevice(*mut ffi::AVBufferRef);

// SAFETY: an AVBufferRef to a device context is reference-counted atomically,
// and FFmpeg's CUDA device context is used from many threads by design (its
// users push and pop the CUDA context around each call).
unsafe impl Send for CudaDevice {}
unsafe impl Sync for CudaDevice {}

impl CudaDevice {
    /// Open the default CUDA device.
    pub fn open() -> Result<CudaDevice, String> {
        let mut device: *mut ffi::AVBufferRef = std::ptr::null_mut();
        // SAFETY: on success av_hwdevice_ctx_create writes a new reference
        // into `device`, owned by the CudaDevice from here; on failure it
        // leaves it null.
        let r = unsafe {
            ffi::av_hwdevice_ctx_create(
                &mut device,
                ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA,
                std::ptr::null(),
                std::ptr::null_mut(),
                0,
            )
        };
        if r < 0 || device.is_null() {
            return Err(format!(
                "cannot open a CUDA device: {}",
                ffmpeg::Error::from(r)
            ));
        }
        Ok(CudaDevice(device))
    }

    /// The device reference (borrowed: take `av_buffer_ref` to keep it).
    pub fn as_ptr(&self) -> *mut ffi::AVBufferRef {
        self.0
    }

    /// A new frames context of `width`x`height` YUV 4:2:0 CUDA frames, as an
    /// NVENC encoder that takes frames from the GPU must be opened with.
    pub fn frames(&self, width: u32, height: u32) -> Result<*mut ffi::AVBufferRef, ffmpeg::Error> {
        // SAFETY: the device is valid; the new frames context is configured
        // before av_hwframe_ctx_init and unreferenced if that fails; on
        // success the caller owns the returned reference.
        unsafe {
            let mut frames = ffi::av_hwframe_ctx_alloc(self.0);
            if frames.is_null() {
                return Err(ffmpeg::Error::Bug);
            }
            let ctx = (*frames).data as *mut ffi::AVHWFramesContext;
            (*ctx).format = ffi::AVPixelFormat::AV_PIX_FMT_CUDA;
            (*ctx).sw_format = ffi::AVPixelFormat::AV_PIX_FMT_YUV420P;
            (*ctx).width = width as i32;
            (*ctx).height = height as i32;
            let r = ffi::av_hwframe_ctx_init(frames);
            if r < 0 {
                ffi::av_buffer_unref(&mut frames);
                return Err(ffmpeg::Error::from(r));
            }
            Ok(frames)
        }
    }
}

impl Drop for CudaDevice {
    fn drop(&mut self) {
        // SAFETY: the reference taken in `open`, released once.
        unsafe { ffi::av_buffer_unref(&mut self.0) }
    }
}

/// Make a decoder that has not been opened yet decode on `device`: NVDEC
/// where it can take the stream (frames stay on the GPU), the software
/// decoder otherwise (the scale graph uploads those frames).
///
/// # Safety
/// `ctx` must be a valid, unopened decoder context.
pub unsafe fn decode_on(ctx: *mut ffi::AVCodecContext, device: &CudaDevice) {
    (*ctx).hw_device_ctx = ffi::av_buffer_ref(device.as_ptr());
    (*ctx).get_format = Some(pick_cuda);
}

/// The decoder's format choice: CUDA frames when offered.
unsafe extern "C" fn pick_cuda(
    ctx: *mut ffi::AVCodecContext,
    formats: *const ffi::AVPixelFormat,
) -> ffi::AVPixelFormat {
    let mut p = formats;
    while !p.is_null() && *p != ffi::AVPixelFormat::AV_PIX_FMT_NONE {
        if *p == ffi::AVPixelFormat::AV_PIX_FMT_CUDA {
            return *p;
        }
        p = p.add(1);
    }
    ffi::avcodec_default_get_format(ctx, formats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_gpu_the_probe_says_why() {
        if crate::transcode::encoder::nvidia_device_present() {
            return; // a GPU machine: the probe may well succeed
        }
        ffmpeg::init().unwrap();
        let e = crate::transcode::open_gpu_path().map(drop).unwrap_err();
        assert!(e.contains("CUDA"), "{e}");
    }
}
