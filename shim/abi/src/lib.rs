//! What the front (`libbindto.so`, `shim/front`), the engine
//! (`libbindto_engine.so`, `shim`) and the `bindto` command must agree on,
//! written once: a `no_std` crate without `unsafe` or dependencies, so that
//! the front can link it without gaining an import or a relocation.

#![no_std]
#![forbid(unsafe_code)]

pub mod hooks;
pub mod matches;
