//! Compiles the C++ shim against the headers of the libtorch that torch-sys links
//! (`DEP_TCH_LIBTORCH_LIB` is its `lib/`; the headers are beside it in `include/`).
use std::path::PathBuf;

fn main() {
    let lib = PathBuf::from(std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys exports libtorch_lib"));
    let root = lib.parent().expect("libtorch's lib/ has a parent").to_path_buf();
    println!("cargo:rerun-if-changed=cpp");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        // Declarations of the few gloo types c10d's headers name (the wheel ships no gloo headers).
        .include("cpp/gloo_decls")
        .flag("-std=c++17")
        // libtorch 2.x wheels are built with the C++11 ABI (std::__cxx11::basic_string in its symbols).
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .define("USE_C10D_GLOO", None)
        .file("cpp/torch_ext.cpp")
        .compile("seqkd_torch_ext");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    // This crate's own tests run without LD_LIBRARY_PATH (dependents embed it themselves).
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
