#!/bin/sh
# Prints the sha256 of the C core's sources (names and contents, sorted).
# cdaemon/csrc_hash.h carries it because cmd/go hashes only the files in a
# package's own directory: without it, an edit to csrc/*.c would not
# rebuild the cgo package. cdaemon's TestCsrcHash checks it is current.
set -e
export LC_ALL=C
cd "$(dirname "$0")"
for f in $(ls ./*.c ./*.h | sort); do
	printf '%s\n' "${f#./}"
	cat "$f"
done | sha256sum | cut -d' ' -f1
