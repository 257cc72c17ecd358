// Shared by the build scripts of every crate that links libtorch into a test, bench or binary
// (link arguments do not propagate to dependents, TECH-NOTES.md "Linking libtorch").
//
// 1. Bake an rpath to libtorch's lib folder so nothing needs LD_LIBRARY_PATH.
// 2. Keep libtorch_cuda.so NEEDED with --no-as-needed: otherwise the linker drops it (no symbol
//    of it is referenced directly) and CUDA is silently unavailable on a GPU machine.
fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB unset: no rpath baked; set LD_LIBRARY_PATH");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    let mut libs = vec!["-ltorch_cpu", "-ltorch"];
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        libs.push("-ltorch_cuda");
    }
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed,{},--as-needed", libs.join(","));
}
