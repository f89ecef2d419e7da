//! Give every binary, test, example and bench of this package a run-time
//! library path to libtorch, so they start without `LD_LIBRARY_PATH`.
//!
//! torch-sys (a direct dependency, `links = "tch"`) reports the folder it
//! linked as `DEP_TCH_LIBTORCH_LIB`; cargo does not pass it on to the loader,
//! and `LD_LIBRARY_PATH` set in `.cargo/config.toml` is replaced by cargo.
//! The root `gemstones` package uses this same file as its build script.

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
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
