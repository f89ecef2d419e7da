//! Give every binary, test, example and bench of this package a run-time
//! library path to libtorch, so they start without `LD_LIBRARY_PATH`; for
//! `gemstones-model` itself, also compile `src/fused.cpp` (the fused
//! convolution + ReLU6 of inference) against the same libtorch.
//!
//! torch-sys (a direct dependency, `links = "tch"`) reports the folder it
//! linked as `DEP_TCH_LIBTORCH_LIB`; cargo does not pass it on to the loader,
//! and `LD_LIBRARY_PATH` set in `.cargo/config.toml` is replaced by cargo.
//! The root `gemstones` package (its examples, tests and benches link
//! libtorch) uses this same file as its build script.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=torch-sys did not report DEP_TCH_LIBTORCH_LIB: no rpath set");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // A CUDA libtorch: rustc links with --as-needed, which drops
    // libtorch_cuda.so (nothing references it directly) and leaves
    // `tch::Cuda::is_available()` false on a GPU machine. Keep it.
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    if std::env::var("CARGO_PKG_NAME").as_deref() == Ok("gemstones-model") {
        compile_fused(Path::new(&lib));
    }
}

/// `src/fused.cpp` with torch-sys' own compiler settings (C++17, the
/// libtorch headers next to its `lib`, the same C++11 ABI choice).
fn compile_fused(lib: &Path) {
    println!("cargo:rerun-if-changed=src/fused.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let include = lib.parent().unwrap_or(lib).join("include");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("src/fused.cpp")
        .compile("gemstones_fused");
}
