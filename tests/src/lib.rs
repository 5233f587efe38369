//! End-to-end tests for bindto: real programs run in the network lab
//! ([`bindto_lab`], re-exported here whole, so `bindto_tests::Lab` and
//! `bindto_tests::privilege` name the lab's), with what the tests add to
//! it: [`clients`] (the usual client programs and the assertions on where
//! they went), [`programs`] (the C programs in `tests/programs/`), [`dns`]
//! (the lab's DNS servers, binary `lab-dns`) and [`secure`] (a setuid
//! program in the lab).

pub use bindto_lab::*;

pub mod clients;
pub mod dns;
pub mod programs;
pub mod secure;
