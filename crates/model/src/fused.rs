//! The fused convolution + ReLU6 of CPU inference, from `src/fused.cpp`
//! (libtorch's `mkldnn::_convolution_pointwise`, which tch does not bind).
use std::cell::Cell;
use std::ffi::{CStr, c_char};
use std::sync::OnceLock;

use tch::{Device, Kind, Tensor};
use torch_sys::C_tensor;

unsafe extern "C" {
    fn gemstones_conv_relu6(
        x: *const C_tensor,
        w: *const C_tensor,
        b: *const C_tensor,
        pad_h: i64,
        pad_w: i64,
        stride: i64,
        groups: i64,
        error: *mut *mut c_char,
    ) -> *mut C_tensor;
}

thread_local! {
    /// Turned off while tracing an export (see [`unfused`]).
    static ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Run `f` with fusion off on this thread: a traced module must record
/// portable operations, not a oneDNN-only kernel (and libtorch's tracer
/// cannot record this call at all: its graph check fails).
pub(crate) fn unfused<T>(f: impl FnOnce() -> T) -> T {
    /// Puts the setting back even when `f` panics (tch's operations do).
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ENABLED.with(|e| e.set(self.0));
        }
    }
    let _restore = Restore(ENABLED.with(|e| e.replace(false)));
    f()
}

/// Whether convolutions of `kind` on this thread may use the fused kernel now.
pub(crate) fn enabled(kind: Kind) -> bool {
    ENABLED.with(Cell::get) && runs_here(kind)
}

/// Whether the fused kernel runs on this machine for tensors of `kind`,
/// found out once per kind by a 1-pixel convolution. This libtorch may lack
/// the kernel (it needs oneDNN), and oneDNN refuses bf16 on CPUs without
/// AVX-512 BW/VL/DQ or AVX-NE-CONVERT: asking up front costs one call,
/// where failing and falling back would cost a C++ exception with a stack
/// trace on every convolution of every batch.
fn runs_here(kind: Kind) -> bool {
    static F32: OnceLock<bool> = OnceLock::new();
    static BF16: OnceLock<bool> = OnceLock::new();
    let answer = match kind {
        Kind::Float => &F32,
        Kind::BFloat16 => &BF16,
        _ => return false,
    };
    *answer.get_or_init(|| one_pixel_convolution_runs(kind))
}

/// The probe: fails when the kernel is missing (no oneDNN) as when the CPU
/// is refused.
fn one_pixel_convolution_runs(kind: Kind) -> bool {
    let one = Tensor::ones([1, 1, 1, 1], (kind, Device::Cpu));
    match conv_relu6(&one, &one, None, 0, 1, 1) {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!("fused convolution unavailable for {kind:?} here ({e}); running it unfused");
            false
        }
    }
}

/// `min(max(conv2d(x, w, b), 0), 6)`, padding `pad` on every side, in one
/// oneDNN kernel. No autograd: inference only. `x`, `w` and `b` share a
/// floating kind; `x` is on the CPU.
pub(crate) fn conv_relu6(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    pad: i64,
    stride: i64,
    groups: i64,
) -> Result<Tensor, String> {
    let mut error: *mut c_char = std::ptr::null_mut();
    let b = b.map_or(std::ptr::null(), Tensor::as_ptr);
    // SAFETY: the tensor pointers are live for the call (borrowed); the C++
    // side copies what it keeps, returns a new tensor it gives up ownership
    // of, or null with a malloc'd message.
    let y = unsafe { gemstones_conv_relu6(x.as_ptr(), w.as_ptr(), b, pad, pad, stride, groups, &mut error) };
    if y.is_null() {
        let message = if error.is_null() {
            "fused convolution failed".to_owned()
        } else {
            // SAFETY: a NUL-terminated string from malloc, freed once here.
            let m = unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned();
            unsafe { libc::free(error.cast()) };
            m
        };
        return Err(message);
    }
    // SAFETY: a fresh heap `at::Tensor*` whose ownership passes to `Tensor`.
    Ok(unsafe { Tensor::from_ptr(y) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &Tensor, w: &Tensor, b: &Tensor, pad: i64, stride: i64, groups: i64) -> Tensor {
        x.conv2d(w, Some(b), [stride; 2], [pad; 2], [1, 1], groups).clamp(0.0, 6.0)
    }

    #[test]
    fn the_fused_kernel_is_there_and_matches_conv_then_relu6() {
        // The PyPI libtorch this project installs is built with oneDNN: the
        // fused path must be taken, not silently skipped; in bf16 too,
        // wherever the CPU has what oneDNN's bf16 path needs.
        assert!(enabled(Kind::Float));
        assert_eq!(enabled(Kind::BFloat16), cpu_runs_onednn_bf16());
        tch::manual_seed(7);
        // (in, out, kernel, stride, groups): a pointwise, a 3x3 at stride
        // 2, a depthwise 5x5.
        for (cin, cout, k, stride, groups) in [(16, 24, 1, 1, 1), (3, 32, 3, 2, 1), (48, 48, 5, 1, 48)] {
            let x = crate::layers::channels_last(
                &(Tensor::randn([2, cin, 13, 11], (Kind::Float, Device::Cpu)) * 3.0),
            );
            let w = crate::layers::channels_last(&Tensor::randn(
                [cout, cin / groups, k, k],
                (Kind::Float, Device::Cpu),
            ));
            let b = Tensor::randn([cout], (Kind::Float, Device::Cpu));
            for kind in [Kind::Float, Kind::BFloat16].into_iter().filter(|&kind| enabled(kind)) {
                let (x, w, b) = (x.to_kind(kind), w.to_kind(kind), b.to_kind(kind));
                let got = conv_relu6(&x, &w, Some(&b), k / 2, stride, groups).unwrap().to_kind(Kind::Float);
                let want = reference(&x, &w, &b, k / 2, stride, groups).to_kind(Kind::Float);
                assert_eq!(got.size(), want.size());
                let worst = (&got - &want).abs().max().double_value(&[]);
                // Both saturate at 6; bf16 keeps 8 bits of mantissa.
                let tolerance = if kind == Kind::Float { 1e-4 } else { 0.1 };
                assert!(worst <= tolerance, "{kind:?} k{k} s{stride} g{groups}: {worst}");
                let clipped =
                    got.gt(5.99).any().int64_value(&[]) == 1 && got.eq(0.0).any().int64_value(&[]) == 1;
                assert!(clipped, "the inputs reach both ends of ReLU6");
            }
        }
    }

    /// oneDNN's rule for its bf16 convolutions (`mkldnn_bf16_device_check`),
    /// with what `ONEDNN_MAX_CPU_ISA` allows it (`AVX2` there plays a CPU
    /// without AVX-512, as CI's: the unfused path is then taken and tested).
    fn cpu_runs_onednn_bf16() -> bool {
        let capped = std::env::var("ONEDNN_MAX_CPU_ISA")
            .is_ok_and(|isa| ["SSE41", "AVX", "AVX2", "AVX2_VNNI"].contains(&isa.to_uppercase().as_str()));
        !capped && cpu_has_onednn_bf16()
    }

    fn cpu_has_onednn_bf16() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            (has!("avx512bw") && has!("avx512vl") && has!("avx512dq")) || has!("avxneconvert")
        }
        #[cfg(target_arch = "aarch64")]
        {
            std::arch::is_aarch64_feature_detected!("bf16")
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        false
    }

    #[test]
    fn other_kinds_never_take_the_fused_path() {
        assert!(!enabled(Kind::Half) && !enabled(Kind::Double));
    }

    #[test]
    fn a_failing_call_is_an_error_not_a_crash() {
        let x = Tensor::zeros([1, 4, 8, 8], (Kind::Float, Device::Cpu));
        let w = Tensor::zeros([8, 3, 3, 3], (Kind::Float, Device::Cpu));
        let e = conv_relu6(&x, &w, None, 1, 1, 1).unwrap_err();
        assert!(!e.is_empty());
    }
}
