//! Any bytes as a match index, and any pattern against any path: parsing,
//! walking and matching must answer, never panic (the front runs this code
//! in every process of a machine, and a panic there is an abort).
#![no_main]

use bindto_abi::matches::{Index, glob, glob_error};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(index) = Index::parse(data) {
        for (path, stamp) in index.stamped() {
            let _ = (path.len(), stamp.ino);
        }
        let count = index.entries().count();
        let fit = index.may_fit(b"/usr/bin/python3.12", 1000);
        assert!(!fit || count > 0);
    }
    let (pattern, text) = data.split_at(data.len() / 2);
    if glob(pattern, text) {
        assert!(glob_error(pattern).is_none());
    }
    if let Some((at, _)) = glob_error(pattern) {
        assert!(at < pattern.len());
    }
});
