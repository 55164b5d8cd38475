package bench

import (
	"os/exec"
	"strings"
)

// Recipe is a way of building a cdaemon program that a user could adopt:
// go build flags and, for musl, the C compiler. The benchmark builds
// cmd/app-cdaemon once per recipe and starts each build twice in every
// round: daemonized (CDAEMON=1) and as the cgo floor (no CDAEMON), so the
// cgo start-up tax of each recipe and cdaemon's time to ready with it are
// measured side by side with the peers (issue 14).
type Recipe struct {
	Key   string
	Name  string   // the table's label, the flags as a user types them
	Flags []string // go build flags, one argv element each
	Env   []string // extra environment of go build
	Needs string   // a program the recipe needs (musl-gcc); skipped without it
	Why   string   // what it changes, for the report
}

// Recipes are every recipe, the toolchain's default first.
var Recipes = []Recipe{
	{Key: "default", Name: "default `go build` (cgo, dynamically linked, lazy binding)",
		Why: "the dynamic loader maps libc, relocates it and the program, then libc and the Go runtime start"},
	{Key: "pie", Name: "`-buildmode=pie`", Flags: []string{"-buildmode=pie"},
		Why: "position-independent: every absolute address in the program is a relocation the loader applies"},
	{Key: "now", Name: "`-ldflags=-extldflags=-Wl,-z,now` (bind every symbol at start)", Flags: []string{"-ldflags=-extldflags=-Wl,-z,now"},
		Why: "the loader resolves every imported function before main, instead of at its first call"},
	{Key: "strip", Name: "`-ldflags='-s -w'` (no symbol table, no DWARF)", Flags: []string{"-ldflags=-s -w"},
		Why: "a smaller file; the sections dropped are never loaded at start"},
	{Key: "static", Name: "`-ldflags='-linkmode=external -extldflags=-static'` (glibc, static)", Flags: []string{"-ldflags=-linkmode=external -extldflags=-static"},
		Why: "no dynamic loader: no libc.so to map, no symbol lookup, libc's start-up linked in"},
	{Key: "static-pie", Name: "`-buildmode=pie -ldflags='-linkmode=external -extldflags=-static-pie'`", Flags: []string{"-buildmode=pie", "-ldflags=-linkmode=external -extldflags=-static-pie"},
		Why: "static, but the program relocates itself at start (ASLR of the executable)"},
	{Key: "musl-static", Name: "`CC=musl-gcc`, `-ldflags='-linkmode=external -extldflags=-static'` (musl, static)", Flags: []string{"-ldflags=-linkmode=external -extldflags=-static"},
		Env: []string{"CC=musl-gcc"}, Needs: "musl-gcc",
		Why: "static with musl, whose start-up and thread creation do less than glibc's"},
}

// RecommendedRecipe is the recipe the Makefile's GO_BUILD_RECOMMENDED
// spells out and the README recommends: the fastest correct one of the
// last full run (bench/README.md, "Cutting the tax"). TestRecommendedRecipe
// checks that the Makefile agrees.
const RecommendedRecipe = "musl-static"

// recipe returns the recipe of key.
func recipe(key string) (Recipe, bool) {
	for _, r := range Recipes {
		if r.Key == key {
			return r, true
		}
	}
	return Recipe{}, false
}

// ShellFlags are the recipe's flags as a shell (and make) reads them
// back into the same argv: a flag with a space gets its value quoted.
func (r Recipe) ShellFlags() string {
	var out []string
	for _, f := range r.Flags {
		if k, v, ok := strings.Cut(f, "="); ok && strings.Contains(v, " ") {
			f = k + "='" + v + "'"
		}
		out = append(out, f)
	}
	return strings.Join(out, " ")
}

// available says why a recipe cannot be built here, or "".
func (r Recipe) available() string {
	if r.Needs == "" {
		return ""
	}
	if _, err := exec.LookPath(r.Needs); err != nil {
		return "not run: " + r.Needs + " is not installed (`apt-get install musl-tools`)"
	}
	return ""
}
