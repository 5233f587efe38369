//! docs/REFERENCE.md's errno table is the one list of what each refusal
//! returns. This test ties it to the code: the table's rows, parsed from
//! the markdown, must be exactly the rows below, and each row's code must
//! still be where the refusal is made. A row added, removed or given
//! another errno on one side only fails here. Only files are read: no
//! build of the shim is needed.

use std::fs;
use std::path::Path;

/// One refusal: how its row in the table begins, the errno names its
/// errno cell names (in order of first mention), and, for each errno the
/// shim sets itself, a piece of code (file, text) that sets it. The
/// kernel's errnos, which the shim hands back as the real call left them,
/// have none beyond the code that passes them on.
struct Row {
    refusal: &'static str,
    errnos: &'static [&'static str],
    code: &'static [(&'static str, &'static str)],
}

const ROWS: &[Row] = &[
    Row {
        refusal: "the config cannot be used",
        errnos: &["EPERM"],
        code: &[("shim/src/hooks/decide.rs", "Unbound::Refuse(libc::EPERM)")],
    },
    Row {
        refusal: "a route with `action = \"block\"`",
        errnos: &["EPERM"],
        code: &[("shim/src/hooks/decide.rs", "Unbound::Refuse(libc::EPERM)")],
    },
    Row {
        refusal: "SO_BINDTODEVICE refused",
        errnos: &["EPERM", "ENODEV"],
        code: &[(
            "shim/src/apply.rs",
            "BindError::Interface(_, e) | BindError::Source(_, e) => e",
        )],
    },
    Row {
        refusal: "interface missing, for an unconnected datagram",
        errnos: &["ENODEV"],
        code: &[(
            "shim/src/hooks/decide.rs",
            "BindError::Interface(name, libc::ENODEV)",
        )],
    },
    Row {
        refusal: "interface down",
        errnos: &["ENETUNREACH"],
        code: &[],
    },
    Row {
        refusal: "source address cannot be bound",
        errnos: &["EADDRNOTAVAIL"],
        code: &[("shim/src/apply.rs", "e => Err(e)")],
    },
    Row {
        refusal: "the binding has no interface and no source",
        errnos: &["ENETUNREACH"],
        code: &[(
            "shim/src/apply.rs",
            "BindError::Family(_) => libc::ENETUNREACH",
        )],
    },
    Row {
        refusal: "a DNS rewrite to an IPv6 server on an IPv4 socket",
        errnos: &["EAFNOSUPPORT"],
        code: &[(
            "shim/src/hooks/decide.rs",
            "Unbound::Refuse(libc::EAFNOSUPPORT)",
        )],
    },
    Row {
        refusal: "a DNS rewrite to an IPv4 server on an IPv6-only socket",
        errnos: &["ENETUNREACH"],
        code: &[],
    },
    Row {
        refusal: "a wildcard bind with no `listen` address",
        errnos: &["EADDRNOTAVAIL"],
        code: &[(
            "shim/src/hooks/listen.rs",
            "Unbound::Refuse(libc::EADDRNOTAVAIL)",
        )],
    },
    Row {
        refusal: "a panic inside the shim",
        errnos: &["EPERM"],
        code: &[("shim/src/boundary.rs", "errno::set(libc::EPERM)")],
    },
    Row {
        refusal: "a connect or send from a signal handler",
        errnos: &["EAGAIN"],
        code: &[("shim/src/hooks/decide.rs", "Unbound::Refuse(libc::EAGAIN)")],
    },
    Row {
        refusal: "a name lookup from such a signal handler",
        errnos: &["EAI_AGAIN", "TRY_AGAIN", "EAGAIN"],
        code: &[
            (
                "shim/src/resolve/mod.rs",
                "LookupError::Again => libc::EAI_AGAIN",
            ),
            ("shim/src/resolve/mod.rs", "LookupError::Again => TRY_AGAIN"),
            ("shim/src/hooks/dns.rs", "libc::EAGAIN"),
        ],
    },
    Row {
        refusal: "the engine cannot be loaded",
        errnos: &["EPERM", "EAI_FAIL", "ENOENT", "NO_RECOVERY", "EAI_SYSTEM"],
        code: &[
            ("shim/front/src/lib.rs", "Why::Blocked => EPERM"),
            ("shim/front/src/lib.rs", "Why::Blocked => EAI_FAIL"),
            ("shim/front/src/lib.rs", "Why::Blocked => ENOENT"),
            ("shim/front/src/lib.rs", "Why::Blocked => NO_RECOVERY"),
            ("shim/front/src/lib.rs", "Why::Blocked => EAI_SYSTEM"),
        ],
    },
    Row {
        refusal: "a network call or name lookup from the thread loading the engine",
        errnos: &["EAGAIN", "EAI_AGAIN", "TRY_AGAIN"],
        code: &[
            ("shim/front/src/lib.rs", "Why::Again => EAGAIN"),
            ("shim/front/src/lib.rs", "Why::Again => EAI_AGAIN"),
            ("shim/front/src/lib.rs", "Why::Again => TRY_AGAIN"),
        ],
    },
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
}

fn read(path: &str) -> String {
    fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The errno names a cell mentions, in order of first mention: E..., the
/// resolver's EAI_... codes and h_errno values.
fn errno_names(cell: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for word in cell.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        let is_errno = (word.len() > 2
            && word.starts_with('E')
            && word.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            || matches!(word, "TRY_AGAIN" | "NO_RECOVERY");
        if is_errno && !names.iter().any(|n| n == word) {
            names.push(word.to_string());
        }
    }
    names
}

/// The (refusal, errno cell) rows of the table under "## Errno of each
/// refusal".
fn table_rows(reference: &str) -> Vec<(String, String)> {
    let section = reference
        .split("\n## Errno of each refusal\n")
        .nth(1)
        .expect("docs/REFERENCE.md has a section \"Errno of each refusal\"");
    section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2) // the header and its rule
        .map(|line| {
            let (refusal, errno) = line
                .trim_matches('|')
                .split_once(" | ")
                .unwrap_or_else(|| panic!("a row of two cells: {line}"));
            (refusal.trim().to_string(), errno.trim().to_string())
        })
        .collect()
}

#[test]
fn errno_table_in_reference_matches_the_refusals_in_the_code() {
    let rows = table_rows(&read("docs/REFERENCE.md"));
    let documented: Vec<String> = rows.iter().map(|(refusal, _)| refusal.clone()).collect();
    assert_eq!(
        rows.len(),
        ROWS.len(),
        "docs/REFERENCE.md's errno table has {} rows, the code {}: {documented:#?}",
        rows.len(),
        ROWS.len()
    );
    for ((refusal, cell), row) in rows.iter().zip(ROWS) {
        assert!(
            refusal.starts_with(row.refusal),
            "table row {refusal:?} where the code has {:?}",
            row.refusal
        );
        assert_eq!(errno_names(cell), row.errnos, "the errno of {refusal:?}");
        for (file, text) in row.code {
            assert!(
                read(file).contains(text),
                "{file} no longer has {text:?}, which makes the refusal {refusal:?}"
            );
        }
    }
}

#[test]
fn hooks_module_doc_points_to_the_errno_table_instead_of_copying_it() {
    let hooks = read("shim/src/hooks/mod.rs");
    assert!(hooks.contains("docs/REFERENCE.md"));
    assert!(!hooks.contains("//! | refusal | errno |"));
}
