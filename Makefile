# Builds and installs bindto.
#
#   make install PREFIX=/usr/local     build (if needed) and install
#   make && sudo make install          build as yourself, install as root
#   make uninstall PREFIX=/usr/local
#
# Installs <prefix>/bin/bindto, <prefix>/lib/bindto/libbindto.so (found by
# bindto relative to its own executable, so `bindto run` works from any
# directory) and the engine it loads from its own directory,
# <prefix>/lib/bindto/libbindto_engine.so, the demo's
# <prefix>/lib/bindto/uplink-server, shell completions and the example
# profiles. DESTDIR stages for packaging.
#
# 32-bit programs: where the i686 Rust target and gcc-multilib are there,
# the i686 build too. Each build goes in <prefix>/lib/bindto/<platform>/
# (x86_64, i686: what ld.so makes of $PLATFORM in a process of that
# class; haswell and xeon_phi, what glibc 2.26-2.36 make of it on some
# x86_64 CPUs, link to x86_64: see shim/build.rs), and `bindto run` preloads
# <prefix>/lib/bindto/$PLATFORM/libbindto.so.

PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
TARGET_DIR ?= target

RELEASE := $(TARGET_DIR)/release
I686 := i686-unknown-linux-gnu
RELEASE32 := $(TARGET_DIR)/$(I686)/release
# Whether the i686 build can be made here: the Rust target and a C
# compiler that links 32-bit programs (gcc-multilib).
HAVE_I686 := $(shell rustup target list --installed 2>/dev/null | grep -qx $(I686) && \
	echo 'int main(void) { return 0; }' | $${CC:-cc} -m32 -x c -o /dev/null - 2>/dev/null && echo yes)
BINDIR := $(DESTDIR)$(PREFIX)/bin
LIBDIR := $(DESTDIR)$(PREFIX)/lib/bindto
SHAREDIR := $(DESTDIR)$(PREFIX)/share
BUILT := $(RELEASE)/bindto $(RELEASE)/libbindto.so $(RELEASE)/libbindto_engine.so \
	$(RELEASE)/uplink-server

# Rebuilt only when a source changed, so that `sudo make install` after
# `make` needs no cargo in root's PATH.
SOURCES := Cargo.toml $(wildcard Cargo.lock) shim/front/Cargo.lock \
	$(shell find core shim cli lab -path shim/front/target -prune -o \
		\( -name "*.rs" -o -name Cargo.toml \) -print 2>/dev/null)

.PHONY: all install uninstall

all: $(RELEASE)/.bindto-built $(if $(HAVE_I686),$(RELEASE32)/.bindto-built)

# One cargo run builds them all (bindto, the engine, the lab's uplink-server;
# shim's build script builds the front, shim/front, and copies
# libbindto.so beside libbindto_engine.so).
$(RELEASE)/.bindto-built: $(SOURCES)
	$(CARGO) build --release --target-dir $(TARGET_DIR) -p bindto-cli -p bindto-shim -p bindto-lab
	touch $@

# The shim alone; its build script links the result into $(RELEASE)/i686/.
$(RELEASE32)/.bindto-built: $(SOURCES) $(RELEASE)/.bindto-built
	$(CARGO) build --release --target-dir $(TARGET_DIR) --target $(I686) -p bindto-shim
	touch $@

install: all
	install -d $(BINDIR) $(LIBDIR)/x86_64 $(SHAREDIR)/doc/bindto \
		$(SHAREDIR)/bash-completion/completions $(SHAREDIR)/zsh/site-functions \
		$(SHAREDIR)/fish/vendor_completions.d
	install -m 755 $(RELEASE)/bindto $(BINDIR)/bindto
	install -m 755 $(RELEASE)/libbindto.so $(LIBDIR)/libbindto.so
	install -m 755 $(RELEASE)/libbindto_engine.so $(LIBDIR)/libbindto_engine.so
	ln -sfn ../libbindto.so $(LIBDIR)/x86_64/libbindto.so
	ln -sfn ../libbindto_engine.so $(LIBDIR)/x86_64/libbindto_engine.so
	for alias in haswell xeon_phi; do ln -sfn x86_64 $(LIBDIR)/$$alias; done
	@if [ -f $(RELEASE32)/libbindto.so ]; then \
		install -d $(LIBDIR)/i686 && \
		install -m 755 $(RELEASE32)/libbindto.so $(RELEASE32)/libbindto_engine.so $(LIBDIR)/i686/; \
	else \
		echo "bindto: 64-bit library only; for 32-bit programs: rustup target add $(I686), apt-get install gcc-multilib, then make install again"; \
	fi
	install -m 755 $(RELEASE)/uplink-server $(LIBDIR)/uplink-server
	$(RELEASE)/bindto completions bash > $(SHAREDIR)/bash-completion/completions/bindto
	$(RELEASE)/bindto completions zsh > $(SHAREDIR)/zsh/site-functions/_bindto
	$(RELEASE)/bindto completions fish > $(SHAREDIR)/fish/vendor_completions.d/bindto.fish
	install -m 644 profiles.example.toml $(SHAREDIR)/doc/bindto/profiles.example.toml

uninstall:
	rm -f $(BINDIR)/bindto $(LIBDIR)/libbindto.so $(LIBDIR)/libbindto_engine.so \
		$(LIBDIR)/x86_64/libbindto.so $(LIBDIR)/x86_64/libbindto_engine.so \
		$(LIBDIR)/i686/libbindto.so $(LIBDIR)/i686/libbindto_engine.so \
		$(LIBDIR)/haswell $(LIBDIR)/xeon_phi \
		$(LIBDIR)/uplink-server \
		$(SHAREDIR)/bash-completion/completions/bindto $(SHAREDIR)/zsh/site-functions/_bindto \
		$(SHAREDIR)/fish/vendor_completions.d/bindto.fish $(SHAREDIR)/doc/bindto/profiles.example.toml
	-rmdir $(LIBDIR)/x86_64 $(LIBDIR)/i686 $(LIBDIR) $(SHAREDIR)/doc/bindto 2>/dev/null
