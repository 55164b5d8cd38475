# cdaemon: `make` builds everything, `make test` runs every test,
# `make demo` shows a real daemon, `make install PREFIX=...` installs the
# C library.

PREFIX   ?= /usr/local
GO       ?= go
CC       ?= cc
BUILD    ?= build

CSTD     := -std=c11 -D_GNU_SOURCE
CWARN    := -Wall -Wextra -Werror -Wpedantic -Wshadow -Wstrict-prototypes
CFLAGS   ?= -O2 -g
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

LIB_SRCS := $(filter-out csrc/%_test.c,$(wildcard csrc/*.c))
LIB_OBJS := $(patsubst csrc/%.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
PIC_OBJS := $(patsubst csrc/%.c,$(BUILD)/pic/%.o,$(LIB_SRCS))
TEST_SRCS := $(wildcard csrc/tests/*.c)
TEST_BINS := $(patsubst csrc/tests/%.c,$(BUILD)/tests/%,$(TEST_SRCS))
VERSION  := $(shell sed -n 's/^\#define CDAEMON_VERSION "\(.*\)"/\1/p' csrc/cdaemon.h)

.PHONY: all lib go test test-c test-go vet staticcheck demo install clean bench

all: lib go

lib: $(BUILD)/libcdaemon.a $(BUILD)/libcdaemon.so $(BUILD)/cdaemon.pc

go:
	$(GO) build ./...

$(BUILD)/obj/%.o: csrc/%.c csrc/cdaemon.h csrc/internal.h
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CWARN) $(CFLAGS) -c $< -o $@

$(BUILD)/pic/%.o: csrc/%.c csrc/cdaemon.h csrc/internal.h
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CWARN) $(CFLAGS) -fPIC -fvisibility=hidden -DCDAEMON_SHARED -c $< -o $@

$(BUILD)/libcdaemon.a: $(LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libcdaemon.so: $(PIC_OBJS)
	$(CC) -shared -Wl,-soname,libcdaemon.so.0 -o $@ $^

$(BUILD)/cdaemon.pc: csrc/cdaemon.pc.in csrc/cdaemon.h
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

# C tests: every unit compiled again with AddressSanitizer and
# UndefinedBehaviorSanitizer, linked into one binary per test file.
$(BUILD)/tests/%: csrc/tests/%.c csrc/tests/tap.h $(LIB_SRCS) csrc/cdaemon.h csrc/internal.h
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CWARN) -O1 -g $(SANITIZE) -Icsrc -o $@ $< $(LIB_SRCS)

test-c: $(TEST_BINS)
	@set -e; for t in $(TEST_BINS); do echo "# $$t"; ASAN_OPTIONS=detect_leaks=1 $$t; done

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }

staticcheck:
	@command -v staticcheck >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	"$$( command -v staticcheck || echo $$($(GO) env GOPATH)/bin/staticcheck )" ./...

test-go:
	$(GO) test -race -count=1 ./...

test: lib test-c vet staticcheck test-go

demo:
	@bash examples/demo.sh

install: lib
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(BUILD)/libcdaemon.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libcdaemon.so $(DESTDIR)$(PREFIX)/lib/libcdaemon.so.$(VERSION)
	ln -sf libcdaemon.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libcdaemon.so.0
	ln -sf libcdaemon.so.0 $(DESTDIR)$(PREFIX)/lib/libcdaemon.so
	install -m 644 csrc/cdaemon.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/cdaemon.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/

clean:
	rm -rf $(BUILD)
