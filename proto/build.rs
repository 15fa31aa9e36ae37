//! Compiles `shadowsync/**/*.proto` with tonic-prost-build (messages, clients and servers) and
//! writes the file descriptor sets used for gRPC reflection and the contract tests:
//! `shadowsync.bin` (every package) and `shadowsync.<service>.v1.bin` (one package and the files
//! it imports).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::{env, fs, io};

use prost::Message;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

/// The packages whose own descriptor set is emitted, in dependency order.
const PACKAGES: &[&str] = &[
    "shadowsync.common.v1",
    "shadowsync.task.v1",
    "shadowsync.approval.v1",
    "shadowsync.analysis.v1",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    println!(
        "cargo:rerun-if-changed={}",
        proto_root.join("shadowsync").display()
    );
    println!("cargo:rerun-if-env-changed=PROTOC");

    // prost-build honours `PROTOC`; otherwise use the vendored binary. (Passed to the config
    // rather than through `env::set_var`, which is unsafe in edition 2024.)
    let protoc = match env::var_os("PROTOC") {
        Some(_) => None,
        None => Some(protoc_bin_vendored::protoc_bin_path()?),
    };
    compile(&proto_root, &out_dir, protoc)
}

fn compile(
    proto_root: &Path,
    out_dir: &Path,
    protoc: Option<PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut protos = Vec::new();
    collect_protos(&proto_root.join("shadowsync"), &mut protos)?;
    protos.sort();
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }

    let all_set_path = out_dir.join("shadowsync.bin");
    let mut config = tonic_prost_build::Config::new();
    if let Some(protoc) = protoc {
        config.protoc_executable(protoc);
    }
    // `prost::Name` for every message: queue code sets the AMQP `type` property to the full name.
    config.enable_type_names();

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // A server that does not implement an rpc yet answers UNIMPLEMENTED.
        .generate_default_stubs(true)
        .file_descriptor_set_path(&all_set_path)
        .compile_with_config(config, &protos, &[proto_root.to_path_buf()])?;

    write_package_sets(&all_set_path, out_dir)?;
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

/// Writes `<package>.bin` for each package: its files plus everything they import, transitively,
/// so a reflection server registering only that set can resolve every type it mentions.
fn write_package_sets(
    all_set_path: &Path,
    out_dir: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let all = FileDescriptorSet::decode(fs::read(all_set_path)?.as_slice())?;
    let by_name: HashMap<&str, &FileDescriptorProto> =
        all.file.iter().map(|file| (file.name(), file)).collect();

    for package in PACKAGES {
        let mut wanted = BTreeSet::new();
        let mut stack: Vec<&str> = all
            .file
            .iter()
            .filter(|file| file.package() == *package)
            .map(|file| file.name())
            .collect();
        while let Some(name) = stack.pop() {
            if wanted.insert(name) {
                let file = by_name
                    .get(name)
                    .ok_or_else(|| format!("descriptor set lacks imported file {name}"))?;
                stack.extend(file.dependency.iter().map(String::as_str));
            }
        }
        // Keep protoc's order (dependencies before dependants).
        let set = FileDescriptorSet {
            file: all
                .file
                .iter()
                .filter(|file| wanted.contains(file.name()))
                .cloned()
                .collect(),
        };
        fs::write(out_dir.join(format!("{package}.bin")), set.encode_to_vec())?;
    }
    Ok(())
}
