//! Just enough of ELF to tell whether the loader will preload anything into
//! a binary: whether it names an interpreter (PT_INTERP), and which
//! architecture it is for.
//!
//! A binary without PT_INTERP is started by the kernel directly, so no
//! `ld.so` ever reads `LD_PRELOAD` (static binaries, most Go programs,
//! static-pie). A binary of another class or machine than libbindto.so gets
//! the library refused by `ld.so` ("wrong ELF class"), with only a warning.
//! Both would leave unbound. A Go program (its build-id note: "Go", type
//! 4) makes its own system calls past libc even when dynamically linked,
//! so the library would not see them either. A hundred lines of reading fixed offsets is
//! smaller than a parsing crate and reads only the few bytes it needs, even
//! of a 100 MB binary.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

const MAGIC: &[u8; 4] = b"\x7fELF";
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
/// The Go linker's build-id note: owner "Go" (NUL-padded to 4 bytes),
/// type 4 (.note.go.buildid).
const GO_NOTE_OWNER: &[u8] = b"Go";
const GO_NOTE_TYPE: u32 = 4;
/// Longest note segment read (Go's is about a hundred bytes).
const MAX_NOTES: u64 = 64 * 1024;
/// e_phnum value meaning "the count is in section header 0's sh_info".
const PN_XNUM: u16 = 0xffff;
/// Longest interpreter path read (the kernel's limit is PATH_MAX).
const MAX_INTERP: u64 = 4096;

/// What an ELF file says about how it is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Elf {
    /// ELFCLASS64 rather than ELFCLASS32.
    pub(crate) is_64: bool,
    /// Little-endian.
    pub(crate) little_endian: bool,
    /// e_machine (62 is x86-64, 183 aarch64...).
    pub(crate) machine: u16,
    /// The PT_INTERP path (e.g. /lib64/ld-linux-x86-64.so.2), if any.
    pub(crate) interpreter: Option<PathBuf>,
    /// Built by Go's linker (it has Go's build-id note).
    pub(crate) go: bool,
}

impl Elf {
    /// Whether a library built as `self` can be loaded into `other`.
    pub(crate) fn same_target(&self, other: &Elf) -> bool {
        (self.is_64, self.little_endian, self.machine)
            == (other.is_64, other.little_endian, other.machine)
    }

    /// Class and machine, for messages: "64-bit x86-64".
    pub(crate) fn target(&self) -> String {
        let machine = match self.machine {
            3 => "i386".to_owned(),
            8 => "MIPS".to_owned(),
            20 => "PowerPC".to_owned(),
            21 => "PowerPC64".to_owned(),
            22 => "s390".to_owned(),
            40 => "ARM".to_owned(),
            62 => "x86-64".to_owned(),
            183 => "AArch64".to_owned(),
            243 => "RISC-V".to_owned(),
            258 => "LoongArch".to_owned(),
            n => format!("machine {n}"),
        };
        format!("{}-bit {machine}", if self.is_64 { 64 } else { 32 })
    }
}

/// Reads the ELF header and program headers of `file`; `Ok(None)` if it is
/// not ELF at all.
pub(crate) fn read(file: &File) -> io::Result<Option<Elf>> {
    let mut ident = [0u8; 64];
    let got = read_at_most(file, &mut ident, 0)?;
    if got < 16 || &ident[..4] != MAGIC {
        return Ok(None);
    }
    let header = Reader::new(&ident[..got], ident[4], ident[5])?;
    let r = header;
    // Offsets of the ELF header fields (Elf32_Ehdr / Elf64_Ehdr).
    let (phoff, phentsize, phnum, shoff, shentsize) = if r.is_64 {
        (r.u64(32)?, r.u16(54)?, r.u16(56)?, r.u64(40)?, r.u16(58)?)
    } else {
        (
            r.u32(28)?.into(),
            r.u16(42)?,
            r.u16(44)?,
            r.u32(32)?.into(),
            r.u16(46)?,
        )
    };
    let machine = r.u16(18)?;

    let phnum = if phnum == PN_XNUM {
        // The real count is sh_info of section header 0.
        let mut sh = vec![0u8; usize::from(shentsize).max(64)];
        let got = read_at_most(file, &mut sh, shoff)?;
        let s = r.with(&sh[..got]);
        u64::from(if r.is_64 { s.u32(44)? } else { s.u32(28)? })
    } else {
        u64::from(phnum)
    };
    let min_entry = if r.is_64 { 56 } else { 32 };
    if phnum > 0 && u64::from(phentsize) < min_entry {
        return Err(invalid("program header entries are too small"));
    }

    let mut interpreter = None;
    let mut go = false;
    let mut entry = vec![0u8; usize::from(phentsize)];
    for i in 0..phnum {
        let at = i
            .checked_mul(phentsize.into())
            .and_then(|o| o.checked_add(phoff))
            .ok_or_else(|| invalid("program header offset overflows"))?;
        file.read_exact_at(&mut entry, at)?;
        let p = r.with(&entry);
        // Elf64_Phdr: p_offset at 8, p_filesz at 32; Elf32_Phdr: 4 and 16.
        let (offset, size) = if r.is_64 {
            (p.u64(8)?, p.u64(32)?)
        } else {
            (p.u32(4)?.into(), p.u32(16)?.into())
        };
        match p.u32(0)? {
            PT_NOTE if !go && size <= MAX_NOTES => {
                let mut notes = vec![0u8; size as usize];
                let got = read_at_most(file, &mut notes, offset)?;
                go = has_go_note(r.with(&notes[..got]));
                continue;
            }
            PT_INTERP if interpreter.is_none() => {}
            _ => continue,
        }
        if size == 0 || size > MAX_INTERP {
            return Err(invalid("PT_INTERP has an implausible size"));
        }
        let mut path = vec![0u8; size as usize];
        file.read_exact_at(&mut path, offset)?;
        let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
        path.truncate(end);
        interpreter = Some(PathBuf::from(OsString::from_vec(path)));
    }
    Ok(Some(Elf {
        is_64: r.is_64,
        little_endian: r.little_endian,
        machine,
        interpreter,
        go,
    }))
}

/// Whether a note segment holds Go's build-id note. Each note: namesz,
/// descsz, type, then the name and the description, each padded to 4.
fn has_go_note(notes: Reader<'_>) -> bool {
    let pad = |n: u32| (n as usize).div_ceil(4) * 4;
    let mut at = 0usize;
    while at < notes.bytes.len() {
        let (Ok(namesz), Ok(descsz), Ok(kind)) =
            (notes.u32(at), notes.u32(at + 4), notes.u32(at + 8))
        else {
            return false;
        };
        let name = at + 12;
        let owner = notes.bytes.get(name..name.saturating_add(namesz as usize));
        if kind == GO_NOTE_TYPE
            && owner.is_some_and(|o| o.split(|&b| b == 0).next() == Some(GO_NOTE_OWNER))
        {
            return true;
        }
        at = name.saturating_add(pad(namesz)).saturating_add(pad(descsz));
    }
    false
}

/// Fixed-offset reads in the file's byte order.
#[derive(Clone, Copy)]
struct Reader<'a> {
    bytes: &'a [u8],
    is_64: bool,
    little_endian: bool,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], class: u8, data: u8) -> io::Result<Reader<'a>> {
        let is_64 = match class {
            1 => false,
            2 => true,
            _ => return Err(invalid("unknown ELF class")),
        };
        let little_endian = match data {
            1 => true,
            2 => false,
            _ => return Err(invalid("unknown ELF byte order")),
        };
        Ok(Reader {
            bytes,
            is_64,
            little_endian,
        })
    }

    fn with<'b>(self, bytes: &'b [u8]) -> Reader<'b> {
        Reader {
            bytes,
            is_64: self.is_64,
            little_endian: self.little_endian,
        }
    }

    fn array<const N: usize>(&self, at: usize) -> io::Result<[u8; N]> {
        self.bytes
            .get(at..at + N)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| invalid("truncated ELF header"))
    }

    fn u16(&self, at: usize) -> io::Result<u16> {
        let b = self.array(at)?;
        Ok(if self.little_endian {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }

    fn u32(&self, at: usize) -> io::Result<u32> {
        let b = self.array(at)?;
        Ok(if self.little_endian {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    fn u64(&self, at: usize) -> io::Result<u64> {
        let b = self.array(at)?;
        Ok(if self.little_endian {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    }
}

/// Fills as much of `buf` as the file has from `offset`.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A minimal ELF image: header, `phdrs` program headers of type
    /// `types`, and an interpreter string if one is PT_INTERP.
    fn image(is_64: bool, little: bool, types: &[u32]) -> Vec<u8> {
        let interp = b"/lib/ld-test.so\0";
        let (ehsize, phsize) = if is_64 { (64, 56) } else { (52, 32) };
        let phoff = ehsize;
        let interp_at = phoff + phsize * types.len();
        let mut out = vec![0u8; interp_at];
        out[..4].copy_from_slice(MAGIC);
        out[4] = if is_64 { 2 } else { 1 };
        out[5] = if little { 1 } else { 2 };
        let put = |out: &mut Vec<u8>, at: usize, value: u64, width: usize| {
            let bytes = value.to_le_bytes();
            let mut b = bytes[..width].to_vec();
            if !little {
                b.reverse();
            }
            out[at..at + width].copy_from_slice(&b);
        };
        put(&mut out, 18, 62, 2);
        if is_64 {
            put(&mut out, 32, phoff as u64, 8);
            put(&mut out, 54, phsize as u64, 2);
            put(&mut out, 56, types.len() as u64, 2);
        } else {
            put(&mut out, 28, phoff as u64, 4);
            put(&mut out, 42, phsize as u64, 2);
            put(&mut out, 44, types.len() as u64, 2);
        }
        for (i, &t) in types.iter().enumerate() {
            let at = phoff + i * phsize;
            put(&mut out, at, t.into(), 4);
            if is_64 {
                put(&mut out, at + 8, interp_at as u64, 8);
                put(&mut out, at + 32, interp.len() as u64, 8);
            } else {
                put(&mut out, at + 4, interp_at as u64, 4);
                put(&mut out, at + 16, interp.len() as u64, 4);
            }
        }
        out.extend_from_slice(interp);
        out
    }

    fn parse(bytes: &[u8]) -> io::Result<Option<Elf>> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("bindto-elf-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("image");
        File::create(&path)?.write_all(bytes)?;
        let result = read(&File::open(&path)?);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    #[test]
    fn finds_the_interpreter_in_every_layout() {
        for is_64 in [true, false] {
            for little in [true, false] {
                let elf = parse(&image(is_64, little, &[6, 1, PT_INTERP, 1]))
                    .unwrap()
                    .unwrap();
                assert_eq!(elf.interpreter, Some(PathBuf::from("/lib/ld-test.so")));
                assert_eq!((elf.is_64, elf.little_endian), (is_64, little));
                assert_eq!(elf.machine, 62);
            }
        }
    }

    #[test]
    fn static_has_no_interpreter() {
        let elf = parse(&image(true, true, &[1, 1, 4])).unwrap().unwrap();
        assert_eq!(elf.interpreter, None);
        assert_eq!(elf.target(), "64-bit x86-64");
    }

    #[test]
    fn not_elf_and_truncated() {
        assert_eq!(parse(b"#!/bin/sh\necho hi\n").unwrap(), None);
        let mut cut = image(true, true, &[1, PT_INTERP]);
        cut.truncate(80);
        assert!(parse(&cut).is_err());
    }

    #[test]
    fn go_is_told_by_its_build_id_note() {
        let note = |owner: &[u8], kind: u32| {
            let mut n = Vec::new();
            n.extend_from_slice(&(owner.len() as u32).to_le_bytes());
            n.extend_from_slice(&8u32.to_le_bytes());
            n.extend_from_slice(&kind.to_le_bytes());
            n.extend_from_slice(owner);
            n.resize(n.len().div_ceil(4) * 4, 0);
            n.extend_from_slice(b"buildid!");
            n
        };
        let reader = |bytes: &[u8]| has_go_note(Reader::new(bytes, 2, 1).unwrap().with(bytes));
        let gnu = note(b"GNU\0", 3);
        assert!(reader(&[gnu.clone(), note(b"Go\0\0", 4)].concat()));
        assert!(!reader(&gnu));
        assert!(!reader(&note(b"Go\0\0", 1)));
        assert!(!reader(&note(b"Gopher\0", 4)));
        // A size that runs off the end.
        assert!(!reader(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 4, 0, 0, 0]));
    }

    #[test]
    fn the_system_shell_is_dynamic() {
        let elf = read(&File::open("/bin/sh").unwrap()).unwrap().unwrap();
        assert!(elf.interpreter.is_some(), "{elf:?}");
    }
}
