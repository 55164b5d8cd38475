//go:build !cgo

package cdaemon

// The daemon sequence runs in a C constructor, so this package cannot work
// without cgo. A silent fallback would start a program that was asked to
// daemonize in the foreground; fail the build instead (compare runc #3331).
// Build with CGO_ENABLED=1 and a C compiler.
var _ = cdaemon_requires_cgo_set_CGO_ENABLED_1
