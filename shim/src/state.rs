//! The table the hooks consult: built by the first intercepted call, kept
//! in an [`ArcSwapOption`], and rebuilt when the config files change.
//!
//! Nothing here blocks. Threads that race to initialise may each build a
//! table; one compare-and-swap wins and the others use the winner's. The
//! reload check runs at most once a second, in whichever thread wins a
//! compare-and-swap on the second it was last made; the clock is `time()`,
//! which the vDSO answers from one shared word, without a syscall (a
//! jump of the clock only brings a check forward). A changed file is read
//! only once a later check, a second or more after the one that saw the
//! change, finds it unchanged ([`Pending`]): a file rewritten in place is
//! not read half-written (its first half alone may be a valid config). The
//! first load of a process reads the files as they are. A fork at
//! any moment leaves the child with a usable snapshot or none (it then
//! builds its own).

use std::cell::Cell;
use std::ffi::CStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU32, AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use bindto_core::{Binding, Env, IfName, Setup, Table, Verdict, VerdictId, cache, layers};

use crate::guard::{self, Guard};
use crate::log::{self, Notice};
use crate::matches::{self, Choice};

/// Whether the process has anything to do; checked before anything else.
static MODE: AtomicU8 = AtomicU8::new(UNINITIALISED);
const UNINITIALISED: u8 = 0;
const PASS_THROUGH: u8 = 1;
const ACTIVE: u8 = 2;

static STATE: ArcSwapOption<State> = ArcSwapOption::const_empty();

/// The second (of `time()`) in which the files were last checked.
static CHECKED: AtomicI64 = AtomicI64::new(0);

/// What a process with a profile (or the older tools' variables) follows.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) rules: Rules,
    /// The config files and what they looked like when `rules` was built
    /// (or last failed to build).
    watched: Vec<(PathBuf, Option<Stamp>)>,
    /// A change of `watched` seen by a check and not read yet.
    pending: ArcSwapOption<Pending>,
    env: Env,
    secure: bool,
    /// The `[[match]]` rules could not be read: `rules` is broken, and a
    /// reload chooses again rather than rebuild `env`'s profile.
    choosing: bool,
}

/// The watched files as a check found them changed, and that check's
/// second: they are read when a check at least two seconds on (so a whole
/// second later at least) finds them the same.
#[derive(Debug)]
struct Pending {
    stamps: Vec<Option<Stamp>>,
    since: i64,
}

/// The rules in force.
#[derive(Debug)]
pub(crate) enum Rules {
    /// The config could not be read: every intercepted call is refused.
    Broken(String),
    /// A compiled table.
    Table(Arc<Loaded>),
}

/// A compiled table and what the shim caches about it.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) table: Table,
    /// Interface index per binding of `table.bindings()`, 0 until
    /// resolved, for the IP_PKTINFO path (SO_BINDTODEVICE takes the name).
    ifindex: Box<[AtomicU32]>,
    /// What the quick connect does, per verdict of `table.verdicts()`
    /// (none where the table rewrites).
    connects: Box<[QuickConnect]>,
}

/// What the quick connect path does for one of the table's verdicts,
/// worked out when the table is loaded so that a connect reads one entry.
/// Aligned to a power of two, so that finding an entry is a shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(align(32))]
pub(crate) enum QuickConnect {
    /// SO_BINDTODEVICE, and nothing else. First, so that the common case
    /// is told by a compare with zero.
    Device(IfName),
    /// Nothing, unless the shim bound the socket to a device earlier.
    Leave,
    /// Anything else (a block, a source address, logging): the long way.
    Long,
}

impl QuickConnect {
    fn of(verdict: Verdict<'_>) -> QuickConnect {
        if log::enabled() {
            return QuickConnect::Long;
        }
        match verdict {
            Verdict::Direct => QuickConnect::Leave,
            Verdict::Bind(Binding {
                interface: Some(name),
                source,
            }) if source.is_empty() => QuickConnect::Device(*name),
            Verdict::Bind(_) | Verdict::Block => QuickConnect::Long,
        }
    }
}

impl Loaded {
    fn new(table: Table) -> Loaded {
        let ifindex = table.bindings().iter().map(|_| AtomicU32::new(0)).collect();
        // None for a profile that rewrites: the verdict for a destination
        // as it is may not be the one for where it goes.
        let connects = if table.rewrites() {
            Box::default()
        } else {
            table.verdicts().map(QuickConnect::of).collect()
        };
        Loaded {
            table,
            ifindex,
            connects,
        }
    }

    /// What the quick connect does for this verdict: the long way where
    /// there is no entry.
    #[inline(always)]
    pub(crate) fn quick_connect(&self, verdict: VerdictId) -> &QuickConnect {
        self.connects
            .get(verdict.index())
            .unwrap_or(&QuickConnect::Long)
    }

    /// The index of `binding`, which comes from this table's
    /// `bindings()`: its offset in that slice.
    pub(crate) fn index_of(&self, binding: &Binding) -> usize {
        let base = self.table.bindings().as_ptr() as usize;
        (binding as *const Binding as usize).wrapping_sub(base) / size_of::<Binding>()
    }

    /// The index of the interface of binding `index`: cached for the life
    /// of the table, or looked up now. `None` if there is no such
    /// interface.
    pub(crate) fn ifindex(&self, index: usize, name: &IfName) -> Option<u32> {
        self.cached_ifindex(index)
            .or_else(|| self.refresh(index, name))
    }

    /// The index of the interface of binding `index` if it is cached.
    #[inline(always)]
    pub(crate) fn cached_ifindex(&self, index: usize) -> Option<u32> {
        let cached = self.ifindex.get(index)?.load(Ordering::Relaxed);
        (cached != 0).then_some(cached)
    }

    /// Looks `name` up again (the interface may have been recreated under
    /// a new index) and caches the answer if binding `index` of this table
    /// still names it (the table may have been reloaded meanwhile).
    pub(crate) fn refresh(&self, index: usize, name: &IfName) -> Option<u32> {
        // SAFETY: the name is NUL-terminated.
        let found = unsafe { libc::if_nametoindex(name.as_padded().as_ptr().cast()) };
        let ours = self.table.bindings().get(index).and_then(|b| b.interface) == Some(*name);
        if let (true, Some(slot)) = (ours, self.ifindex.get(index)) {
            slot.store(found, Ordering::Relaxed);
        }
        (found != 0).then_some(found)
    }
}

/// Identity and version of a config file; `None` in `watched` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

fn stamp(path: &PathBuf) -> Option<Stamp> {
    fs::metadata(path).ok().map(|m| Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

/// Bumped after every store to STATE, so that a thread knows its cached
/// rules are current from one load. Starts at 1: a thread's [`Cached`]
/// starts (and ends) at 0, which is never current.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// A thread's view of STATE, kept in the guard's thread-local
/// ([`crate::guard::Local`]): the state this thread last used and the
/// generation it was current in. Checking that it is still current is one
/// relaxed load and compare, with no reference count to touch; the
/// reference that keeps it alive is in CACHED_OWNER.
#[derive(Debug)]
pub(crate) struct Cached {
    state: Cell<*const State>,
    generation: Cell<u64>,
}

impl Cached {
    pub(crate) const fn new() -> Cached {
        Cached {
            state: Cell::new(ptr::null()),
            generation: Cell::new(0),
        }
    }

    /// The cached state if it is still the current one.
    #[inline]
    fn get(&self) -> Option<&State> {
        if self.generation.get() != GENERATION.load(Ordering::Relaxed) {
            return None;
        }
        // SAFETY: a generation other than 0 is only set together with a
        // pointer to the state that CACHED_OWNER keeps alive, and CACHED_OWNER's destructor
        // resets the generation to 0 before it lets go.
        Some(unsafe { &*self.state.get() })
    }

    fn forget(&self) {
        self.generation.set(0);
        self.state.set(ptr::null());
    }
}

/// The strong reference behind this thread's [`Cached`]. A separate
/// thread-local because it has a destructor (the Arc), and thread-locals
/// with destructors cost a state check on every access and vanish while
/// the thread exits; this one is touched only when the rules change.
struct CachedOwner(Cell<Option<Arc<State>>>);

impl Drop for CachedOwner {
    fn drop(&mut self) {
        // The Arc goes with this value: the cached pointer must go first.
        guard::local(|local| local.cached.forget());
    }
}

thread_local! {
    static CACHED_OWNER: CachedOwner = const { CachedOwner(Cell::new(None)) };
}

/// Runs `f` with the rules in force, or returns `None` when the process has
/// nothing to do (no profile, no older tools' variables). The first call
/// initialises; later calls check the config files at most once a second.
///
/// The guard is held because initialising and reloading read files and
/// may log; it also holds this thread's cached rules. Borrowed mutably, so
/// that `f` cannot call back in: a nested call could let go of the state
/// `f` is using.
#[inline]
pub(crate) fn with<R>(guard: &mut Guard, f: impl FnOnce(&State) -> R) -> Option<R> {
    match MODE.load(Ordering::Relaxed) {
        PASS_THROUGH => return None,
        ACTIVE => {}
        _ => init()?,
    }
    let cached = &guard.local().cached;
    // `f` is called from one place only, so that it is inlined once.
    let fresh;
    let state = match cached.get() {
        // Also without files to watch (the older tools' variables), so
        // that the clock of the quick paths moves on.
        Some(state) if !reload_due() => state,
        stale => {
            if let Some(state) = stale {
                reload(state);
            }
            fresh = refreshed(cached)?;
            &*fresh
        }
    };
    Some(f(state))
}

/// The current state, cached for this thread when it still can be.
#[cold]
#[inline(never)]
fn refreshed(cached: &Cached) -> Option<Arc<State>> {
    // Read before STATE, which is stored before the generation is bumped:
    // the state loaded is at least as new as the generation recorded.
    let generation = GENERATION.load(Ordering::Acquire);
    let state = STATE.load_full()?;
    // A thread that is exiting and has lost CACHED_OWNER reads the slow way, every
    // time: its rules still hold.
    let kept = CACHED_OWNER.try_with(|hold| drop(hold.0.replace(Some(Arc::clone(&state)))));
    if kept.is_ok() {
        cached.state.set(Arc::as_ptr(&state));
        cached.generation.set(generation);
    }
    Some(state)
}

/// Whether the process was found to have nothing to do. Cheap; `false`
/// before the first intercepted call.
pub(crate) fn passing_through() -> bool {
    mode() == Mode::PassThrough
}

/// What the process is known to have to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Not known before the first intercepted call has read the
    /// environment.
    Uninitialised,
    PassThrough,
    Active,
}

#[inline(always)]
pub(crate) fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        PASS_THROUGH => Mode::PassThrough,
        ACTIVE => Mode::Active,
        _ => Mode::Uninitialised,
    }
}

/// Whether the files were checked in this second, so that no check is due.
/// Asked before [`settled`], with no thread-local or rules to keep across
/// `time()`. Claims no turn to check them, so that the caller can go on to
/// [`with`].
#[inline(always)]
pub(crate) fn checked_now() -> bool {
    CHECKED.load(Ordering::Relaxed) == now()
}

/// The rules in force when this thread has them cached; `None` otherwise,
/// and then [`with`] does the rest (initialise, refresh). Whether a check
/// of the files is due is [`checked_now`]'s question.
#[inline(always)]
pub(crate) fn settled(guard: &Guard) -> Option<&State> {
    guard.local().cached.get()
}

/// Builds the first state; `None` when there is nothing to do.
fn init() -> Option<()> {
    // SAFETY: getauxval only reads the auxiliary vector.
    let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
    let env = Env::capture(|name| {
        let name = std::ffi::CString::new(name).ok()?;
        getenv(&name)
    });
    let env = if secure { env.privileged() } else { env };
    log::init(secure);
    let Some(state) = decide(env, secure) else {
        tracing::debug!(
            "no profile, none of the older tools' variables, no [[match]] fits: passing through"
        );
        MODE.store(PASS_THROUGH, Ordering::Relaxed);
        return None;
    };
    // Another thread may have finished first: keep whichever is in place.
    let previous = STATE.compare_and_swap(&None::<Arc<State>>, Some(Arc::new(state)));
    if previous.is_none() {
        GENERATION.fetch_add(1, Ordering::Release);
        CHECKED.store(now(), Ordering::Relaxed);
    }
    MODE.store(ACTIVE, Ordering::Relaxed);
    Some(())
}

/// Reads `name` from the environment through libc: std's `env::var` takes
/// a lock that a fork could leave held.
pub(crate) fn getenv(name: &CStr) -> Option<String> {
    // SAFETY: `name` is NUL-terminated; the returned pointer, if not null,
    // is a NUL-terminated string in the environment.
    let value = unsafe { libc::getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: see above; copied out at once.
    let value = unsafe { CStr::from_ptr(value) };
    value.to_str().ok().map(str::to_owned)
}

/// Builds the state of a process whose environment is `env`: where no
/// variable asks (and in a privileged process, where a system file's
/// match wins over `BIND_PROFILE`), as if `BIND_PROFILE` named the
/// profile the `[[match]]` rules choose ([`matches`]); `None` for
/// pass-through.
fn decide(env: Env, secure: bool) -> Option<State> {
    if secure || !env.asks_anything() {
        match matches::choose(&env, secure) {
            Choice::Profile(name) => {
                let chosen = Env::capture(|var| match var {
                    "BIND_PROFILE" => Some(name.clone()),
                    _ => env.get(var).map(str::to_owned),
                });
                return build(chosen, secure);
            }
            Choice::None => {}
            Choice::Broken(error) => {
                return Some(State {
                    rules: Rules::Broken(error),
                    watched: watch(&env, secure),
                    pending: ArcSwapOption::const_empty(),
                    env,
                    secure,
                    choosing: true,
                });
            }
        }
    }
    build(env, secure)
}

/// The config files `env` names, as they are now.
fn watch(env: &Env, secure: bool) -> Vec<(PathBuf, Option<Stamp>)> {
    layers::paths(env, secure)
        .into_iter()
        .map(|(_, path)| {
            let stamp = stamp(&path);
            (path, stamp)
        })
        .collect()
}

/// Builds the state `env` asks for; `None` for pass-through.
fn build(env: Env, secure: bool) -> Option<State> {
    // Only a profile reads files; the older tools' variables never change.
    let watched = if env.profile().is_some() {
        watch(&env, secure)
    } else {
        Vec::new()
    };
    // SAFETY: geteuid only reads the process's credentials.
    let dir = cache::Dir::new(&env, secure, unsafe { libc::geteuid() });
    let rules = match bindto_core::setup(&env, secure, dir.as_ref()) {
        Ok((Setup::PassThrough, _)) => return None,
        Ok((Setup::Table(table), cached)) => {
            if let (Some(cached), Some(dir)) = (cached, &dir) {
                tracing::debug!(dir = %dir.path().display(), "compiled-table cache: {cached}");
            }
            tracing::info!(profile = table.profile(), "table loaded");
            Rules::Table(Arc::new(Loaded::new(table)))
        }
        Err(error) => Rules::Broken(error.to_string()),
    };
    release_parse_memory();
    Some(State {
        rules,
        watched,
        pending: ArcSwapOption::const_empty(),
        env,
        secure,
        choosing: false,
    })
}

/// Parsing a big config leaves megabytes of freed heap (the TOML document
/// tree) that malloc keeps; give it back, so that the host program's
/// resident size grows by the table, not by the parse.
fn release_parse_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The current second. `time()` rather than `clock_gettime`: the hot path
/// only needs to see the second change, and the vDSO's `time` is a single
/// load where `clock_gettime` runs a sequence-counter loop.
#[inline]
fn now() -> i64 {
    // (time_t is 32 bits on i686.)
    // SAFETY: a null argument asks only for the return value.
    unsafe { libc::time(ptr::null_mut()) as i64 }
}

/// Whether this thread should check the files now: the second changed
/// since the last check and no other thread took the turn.
#[inline]
fn reload_due() -> bool {
    let checked = CHECKED.load(Ordering::Relaxed);
    let now = now();
    now != checked
        && CHECKED
            .compare_exchange(checked, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// The watched files as they are now.
fn stamps(state: &State) -> Vec<Option<Stamp>> {
    state.watched.iter().map(|(path, _)| stamp(path)).collect()
}

/// Rebuilds the state if a watched file changed and has since stayed the
/// same for a second ([`Pending`]).
fn reload(state: &State) {
    let current = stamps(state);
    if state
        .watched
        .iter()
        .map(|(_, seen)| *seen)
        .eq(current.iter().copied())
    {
        state.pending.store(None);
        return;
    }
    let now = now();
    let pending = state.pending.load();
    match &*pending {
        Some(p) if p.stamps == current && now >= p.since + 2 => {}
        Some(p) if p.stamps == current => return,
        _ => {
            let stamps = current;
            state
                .pending
                .store(Some(Arc::new(Pending { stamps, since: now })));
            return;
        }
    }
    let rebuilt = if state.choosing {
        decide(state.env.clone(), state.secure)
    } else {
        build(state.env.clone(), state.secure)
    };
    let Some(mut fresh) = rebuilt else {
        if state.choosing {
            // Mended, and no match fits: nothing to do any more.
            tracing::info!("config changed: no [[match]] fits; passing through");
            MODE.store(PASS_THROUGH, Ordering::Relaxed);
            STATE.store(None);
            GENERATION.fetch_add(1, Ordering::Release);
        }
        return;
    };
    // Changed while being read: wait for it to settle again.
    if stamps(state) != current {
        state.pending.store(None);
        return;
    }
    match (&fresh.rules, &state.rules) {
        (Rules::Broken(error), Rules::Table(previous)) => {
            log::notice(
                Notice::Reload,
                format_args!("reloading profile failed: {error}; keeping the previous rules"),
            );
            // Remember the broken files, so they are not read again until
            // they change again.
            fresh.rules = Rules::Table(Arc::clone(previous));
        }
        (Rules::Broken(error), Rules::Broken(_)) => log::notice(
            Notice::Reload,
            format_args!("reloading profile failed: {error}; network calls are still blocked"),
        ),
        (Rules::Table(loaded), _) => tracing::info!(
            profile = loaded.table.profile(),
            "config changed: new rules in force"
        ),
    }
    STATE.store(Some(Arc::new(fresh)));
    GENERATION.fetch_add(1, Ordering::Release);
}
