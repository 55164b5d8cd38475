package bench

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The fairness of the comparison lives in how the binaries are built
// (issue 14): the peers as their users build them, pure Go; the cgo floor
// with cgo. These tests read the binaries Build made, as the harness runs
// them, so a change to Build or to a contender that breaks either fails
// here rather than shifting a ratio silently.

func binaryOf(t *testing.T, name, path string) Binary {
	t.Helper()
	b, err := ReadBinary(name, path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPeersArePureGo: every peer binary, and the pure-Go floor, has no
// PT_INTERP, no DT_NEEDED, no runtime/cgo function in its symbol table,
// and was built with CGO_ENABLED=0.
func TestPeersArePureGo(t *testing.T) {
	for key, path := range progs.Peers() {
		c := contender(t, key)
		if got := c.Argv(progs)[0]; got != path {
			t.Errorf("%s runs %s, not its own binary %s", key, got, path)
		}
		b := binaryOf(t, key, path)
		if ok, why := b.PureGo(); !ok {
			t.Errorf("%s (%s) is not a pure-Go static binary: %s", key, path, why)
		}
	}
}

// TestPureGoCheckCatches: the check fails on what it must catch: a
// dynamically linked cgo binary (PT_INTERP), a static cgo binary (no
// PT_INTERP, cgo symbols), a binary without a symbol table to search.
func TestPureGoCheckCatches(t *testing.T) {
	for _, tc := range []struct{ name, path, want string }{
		{"the single cgo binary", progs.Daemon, "PT_INTERP"},
		{"cdaemon, static", progs.Cdaemon["static"], "cgo symbols"},
		{"cdaemon, static-pie", progs.Cdaemon["static-pie"], "cgo symbols"},
		{"cdaemon, stripped", progs.Cdaemon["strip"], "PT_INTERP"},
	} {
		b := binaryOf(t, tc.name, tc.path)
		ok, why := b.PureGo()
		if ok || !strings.Contains(why, tc.want) {
			t.Errorf("%s: pure Go %v (%q), want refused for %q", tc.name, ok, why, tc.want)
		}
	}
	b := binaryOf(t, "cdaemon, static", progs.Cdaemon["static"])
	if b.Interp != "" || !slices.Contains(b.Cgo, "x_cgo_init") {
		t.Errorf("static cgo binary: interp %q, cgo symbols %v; want none and x_cgo_init", b.Interp, b.Cgo)
	}
	b.Symbols, b.Cgo = false, nil // as after -ldflags=-s
	if ok, why := b.PureGo(); ok || !strings.Contains(why, "no symbol table") {
		t.Errorf("a binary without symbols passed as pure Go (%q)", why)
	}
}

// TestCgoFloorIsCgo: the cgo floor runs a cgo binary (so the two floors
// cannot collapse into one), every recipe's build is cgo, and the
// runtime/cgo-only program of the tax experiment is cgo too.
func TestCgoFloorIsCgo(t *testing.T) {
	for _, c := range Contenders {
		if !strings.HasPrefix(c.Key, "cgo-floor") || progs.Missing[c.Needs] != "" {
			continue
		}
		path := c.Argv(progs)[0]
		b := binaryOf(t, c.Key, path)
		if !b.IsCgo() || b.CgoEnabled != "1" {
			t.Errorf("%s runs %s: cgo symbols %v, CGO_ENABLED %q; want a cgo binary", c.Key, path, b.Cgo, b.CgoEnabled)
		}
		if pure, _ := b.PureGo(); pure {
			t.Errorf("%s runs a pure-Go binary", c.Key)
		}
	}
	if b := binaryOf(t, "runtime/cgo alone", progs.PlainCgo); !b.IsCgo() || b.Interp == "" {
		t.Errorf("app-plain -tags cgoruntime: cgo %v, interp %q; want a dynamically linked cgo binary", b.Cgo, b.Interp)
	}
	floor := contender(t, "go-floor").Argv(progs)[0]
	cgo := contender(t, "cgo-floor").Argv(progs)[0]
	if floor == cgo {
		t.Errorf("the two floors run the same binary %s", floor)
	}
}

// TestRecipesBuiltAsNamed: each recipe's binary has the linking its name
// says (static ones have no loader, dynamic ones have one), so a recipe
// whose flags stopped doing anything is caught.
func TestRecipesBuiltAsNamed(t *testing.T) {
	static := map[string]bool{"static": true, "static-pie": true, "musl-static": true}
	for _, r := range Recipes {
		path := progs.Cdaemon[r.Key]
		if path == "" {
			t.Logf("%s: %s", r.Key, progs.Missing[r.Needs])
			continue
		}
		b := binaryOf(t, r.Key, path)
		if static[r.Key] != (b.Interp == "") {
			t.Errorf("%s: PT_INTERP %q", r.Key, b.Interp)
		}
		if (r.Key == "strip") == b.Symbols {
			t.Errorf("%s: symbol table present: %v", r.Key, b.Symbols)
		}
	}
}

// TestRecommendedRecipe: the Makefile's GO_BUILD_RECOMMENDED spells out
// RecommendedRecipe's flags, so the README, the Makefile and the report
// name one build.
func TestRecommendedRecipe(t *testing.T) {
	r, ok := recipe(RecommendedRecipe)
	if !ok {
		t.Fatalf("RecommendedRecipe %q is not a recipe", RecommendedRecipe)
	}
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^GO_BUILD_RECOMMENDED\s*:=\s*(.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("no GO_BUILD_RECOMMENDED := line in the Makefile")
	}
	if got, want := strings.TrimSpace(string(m[1])), r.ShellFlags(); got != want {
		t.Errorf("Makefile: GO_BUILD_RECOMMENDED := %s; recipe %s is %s", got, r.Key, want)
	}
	// The compiler, in its own variable (CC is not a go build flag).
	cc := regexp.MustCompile(`(?m)^GO_BUILD_RECOMMENDED_CC\s*:=\s*(.*)$`).FindSubmatch(mk)
	var want []string
	if cc != nil {
		want = []string{"CC=" + strings.TrimSpace(string(cc[1]))}
	}
	if strings.Join(r.Env, " ") != strings.Join(want, " ") {
		t.Errorf("Makefile: GO_BUILD_RECOMMENDED_CC gives %v; recipe %s needs %v", want, r.Key, r.Env)
	}
}

// TestShellFlags: flags with spaces are quoted as a shell and make read
// them back.
func TestShellFlags(t *testing.T) {
	for _, r := range Recipes {
		out, err := exec.Command("sh", "-c", "for a in "+r.ShellFlags()+`; do printf '%s\n' "$a"; done`).Output()
		if err != nil {
			t.Fatalf("%s: %v", r.Key, err)
		}
		got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if len(r.Flags) == 0 {
			got = nil
		}
		if strings.Join(got, "\x00") != strings.Join(r.Flags, "\x00") {
			t.Errorf("%s: %s reads back as %q, want %q", r.Key, r.ShellFlags(), got, r.Flags)
		}
	}
}
