//! `bindto demo`: being written; see the next commit.

use crate::exit::{Fail, Outcome};

pub(crate) fn run() -> Outcome {
    Err(Fail::problem("the demo is not built yet"))
}
