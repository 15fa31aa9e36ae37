//! `shadowsync` runs on the image's runtime base (deploy/docker/Dockerfile).

#[test]
fn shadowsync_needs_only_what_the_runtime_image_ships() {
    shadowsync_common::testing::linkage::assert_runs_on_the_runtime_image(std::path::Path::new(
        env!("CARGO_BIN_EXE_shadowsync"),
    ));
}
