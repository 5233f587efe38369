//! `bindto demo`, run for real from an installed layout when this machine
//! can build namespaces and the shim and the lab's server are built.

mod common;

use std::path::{Path, PathBuf};

use common::{Scratch, expect, run};

/// `name` from the workspace's release or debug build.
fn built(name: &str) -> Option<PathBuf> {
    let debug = Path::new(common::BINDTO).parent()?;
    let target = debug.parent()?;
    ["release", "debug"]
        .iter()
        .map(|profile| target.join(profile).join(name))
        .find(|path| path.is_file())
}

#[test]
fn the_demo_shows_the_uplinks_and_cleans_up() {
    let (Some(shim), Some(engine), Some(server)) = (
        built("libbindto.so"),
        built("libbindto_engine.so"),
        built("uplink-server"),
    ) else {
        common::skip(
            "build the workspace first (cargo build --release): no shim, engine or uplink-server",
        );
        return;
    };
    let s = Scratch::new("demo");
    let lib = s.path("prefix/lib/bindto");
    let bin = s.path("prefix/bin");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(common::BINDTO, bin.join("bindto")).unwrap();
    std::fs::copy(&shim, lib.join("libbindto.so")).unwrap();
    std::fs::copy(&engine, lib.join("libbindto_engine.so")).unwrap();
    std::fs::copy(&server, lib.join("uplink-server")).unwrap();

    let o = run(&mut s.command(&bin.join("bindto"), &["demo"]));
    let out = common::stdout(&o);
    let err = common::stderr(&o);
    if o.status.code() == Some(1) && err.contains("needs root") {
        common::skip(&err);
        return;
    }
    expect(&o, 0);
    assert!(
        out.contains("-> wan 198.18.1.2 (left through wan0, the default route)"),
        "{out}"
    );
    assert!(
        out.contains("-> vpn 198.18.2.2 (left through vpn0"),
        "{out}"
    );
    assert!(out.contains("exclude #1 of profile \"demo\""), "{out}");
    assert!(out.contains("Removed the lab"), "{out}");
}

#[test]
fn the_demo_needs_its_server() {
    let s = Scratch::new("demo-noserver");
    let Some(exe) = s.install() else { return };
    let o = run(&mut s.command(&exe, &["demo"]));
    let (_, err) = expect(&o, 1);
    assert!(
        err.contains("uplink-server") || err.contains("needs root"),
        "{err}"
    );
}
