//! What the image's runtime base (distroless `cc`, Debian 12) can load: glibc 2.36 and
//! libgcc_s, nothing else. `deploy/docker/Dockerfile` copies the binaries onto it, so each
//! binary's tests check it links against no other shared library.

use std::path::Path;
use std::process::Command;

/// What Debian 12's libc6 and libgcc-s1 provide.
const ALLOWED: [&str; 8] = [
    "libc.so.6",
    "libm.so.6",
    "libgcc_s.so.1",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
];
const NEWEST_GLIBC: (u32, u32) = (2, 36);

fn readelf(args: &[&str], binary: &Path) -> String {
    let output = Command::new("readelf")
        .args(args)
        .arg(binary)
        .output()
        .expect("readelf (binutils) runs");
    assert!(
        output.status.success(),
        "readelf {args:?} {}",
        binary.display()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts that `binary` links only against the runtime image's libraries (glibc and
/// libgcc_s: no OpenSSL) and needs no glibc symbol newer than Debian 12's 2.36.
///
/// # Panics
/// When it does not, naming the library or symbol version; when `readelf` is missing.
pub fn assert_runs_on_the_runtime_image(binary: &Path) {
    let dynamic = readelf(&["-d"], binary);
    let needed: Vec<&str> = dynamic
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| line.split('[').nth(1)?.split(']').next())
        .collect();
    assert!(needed.contains(&"libc.so.6"), "{needed:?}");
    for library in &needed {
        assert!(
            ALLOWED.contains(library),
            "{} needs {library}, which the runtime image does not ship",
            binary.display()
        );
    }
    let versions = readelf(&["-V"], binary);
    for name in versions
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("GLIBC_"))
    {
        let mut parts = name.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        assert!(
            version <= NEWEST_GLIBC,
            "{} needs GLIBC_{name}, newer than Debian 12's 2.36",
            binary.display()
        );
    }
}
