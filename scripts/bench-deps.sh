#!/usr/bin/env bash
# What `make bench` needs beyond Go and gcc, installed on a Debian or
# Ubuntu machine where it is missing: without them the rows that need
# them say "not run" and why, and the rest is measured anyway.
#   ruby        the Ruby peer, Process.daemon (rb_daemon, where the
#               sequence comes from)
#   musl-tools  musl-gcc, for the recommended build recipe (musl, static)
#   strace      the tax experiment's system-call counts
#   perf        the tax experiment's perf stat (linux-perf on Debian)
# Idempotent; needs root for apt-get.
set -euo pipefail
need=()
command -v ruby >/dev/null || need+=(ruby)
command -v musl-gcc >/dev/null || need+=(musl-tools)
command -v strace >/dev/null || need+=(strace)
command -v perf >/dev/null || need+=(linux-perf)
if ((${#need[@]} == 0)); then
	echo "bench-deps: ruby, musl-gcc, strace and perf are installed"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "bench-deps: missing ${need[*]}: run as root, or: sudo apt-get install ${need[*]}" >&2
	exit 1
fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
