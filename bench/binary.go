package bench

import (
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Binary is what a contender's executable is made of, read from its ELF
// headers and symbol table: whether the peers are pure Go as their users
// build them, and whether the cgo floor is in fact cgo, is checked here
// and shown in the report, so the fairness cannot silently regress
// (issue 14).
type Binary struct {
	Name   string // what it is, in the report
	Path   string
	Recipe string // the Recipe key of a cmd/app-cdaemon build
	Size   int64
	// Interp is the PT_INTERP program header: the dynamic loader the
	// kernel maps first. "" for a static executable (static-pie included).
	Interp string
	Needed []string // DT_NEEDED shared libraries
	// Cgo lists the cgo symbols found: runtime/cgo's functions
	// (x_cgo_init, crosscall2, runtime/cgo.*) and any function whose name
	// holds "_cgo_". Not data: every Go binary has the runtime's hook
	// variables (_cgo_init, _cgo_thread_start, ...), nil without cgo.
	Cgo []string
	// Symbols says whether the file has a symbol table to search
	// (-ldflags=-s removes it; then Cgo is empty whatever the binary).
	Symbols bool
	// CgoEnabled is the CGO_ENABLED setting the Go toolchain recorded in
	// the binary's build information ("" if none).
	CgoEnabled string
}

// PureGo reports whether b is a pure-Go static binary: no loader, no
// shared library, no cgo symbol in a symbol table that is there, built
// with CGO_ENABLED=0. The reason is "" when it is.
func (b Binary) PureGo() (bool, string) {
	switch {
	case b.Interp != "":
		return false, "has PT_INTERP " + b.Interp
	case len(b.Needed) > 0:
		return false, "needs " + strings.Join(b.Needed, ", ")
	case !b.Symbols:
		return false, "has no symbol table to check"
	case len(b.Cgo) > 0:
		return false, "has cgo symbols " + strings.Join(b.Cgo, ", ")
	case b.CgoEnabled != "0":
		return false, fmt.Sprintf("built with CGO_ENABLED=%q", b.CgoEnabled)
	}
	return true, ""
}

// IsCgo reports whether b links runtime/cgo.
func (b Binary) IsCgo() bool { return len(b.Cgo) > 0 || b.CgoEnabled == "1" }

// cgoFunctions are runtime/cgo's entry points, present in every cgo
// binary and in no pure-Go one.
var cgoFunctions = []string{"x_cgo_init", "crosscall2", "_cgo_sys_thread_start"}

// ReadBinary inspects the executable at path.
func ReadBinary(name, path string) (Binary, error) {
	b := Binary{Name: name, Path: path}
	st, err := os.Stat(path)
	if err != nil {
		return b, err
	}
	b.Size = st.Size()
	f, err := elf.Open(path)
	if err != nil {
		return b, fmt.Errorf("bench: %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			buf := make([]byte, p.Filesz)
			if _, err := p.ReadAt(buf, 0); err != nil {
				return b, fmt.Errorf("bench: %s: PT_INTERP: %w", path, err)
			}
			b.Interp = strings.TrimRight(string(buf), "\x00")
		}
	}
	if b.Needed, err = f.ImportedLibraries(); err != nil {
		return b, fmt.Errorf("bench: %s: DT_NEEDED: %w", path, err)
	}
	syms, err := f.Symbols()
	if err != nil && err != elf.ErrNoSymbols {
		return b, fmt.Errorf("bench: %s: symbols: %w", path, err)
	}
	b.Symbols = len(syms) > 0
	// runtime/cgo's entry points first, then up to eight others.
	var entry, other []string
	for _, s := range syms {
		fn := elf.ST_TYPE(s.Info) == elf.STT_FUNC
		switch {
		case slices.Contains(cgoFunctions, s.Name):
			if !slices.Contains(entry, s.Name) {
				entry = append(entry, s.Name)
			}
		case strings.HasPrefix(s.Name, "runtime/cgo.") || (fn && strings.Contains(s.Name, "_cgo_")):
			if len(other) < 8 {
				other = append(other, s.Name)
			}
		}
	}
	b.Cgo = append(entry, other...)
	if bi, err := buildinfo.ReadFile(path); err == nil {
		for _, s := range bi.Settings {
			if s.Key == "CGO_ENABLED" {
				b.CgoEnabled = s.Value
			}
		}
	}
	return b, nil
}

// Binaries inspects every executable of p that a contender runs.
func (p *Programs) Binaries() ([]Binary, error) {
	type entry struct{ name, path, recipe string }
	list := []entry{
		{"(3) cmd/peer-reexec", p.Reexec, ""},
		{"(4) cmd/peer-go-daemon", p.GoDaemon, ""},
		{"(5) cmd/peer-godaemon", p.Godaemon, ""},
		{"(7), (9) cmd/app-plain", p.Plain, ""},
		{"(2) cmd/app-gowrap", p.Gowrap, ""},
		{"(1s)-(5s) cmd/benchdaemon, the single cgo binary", p.Daemon, ""},
		{"runtime/cgo alone: cmd/app-plain -tags cgoruntime", p.PlainCgo, ""},
	}
	for _, r := range Recipes {
		if path := p.Cdaemon[r.Key]; path != "" {
			list = append(list, entry{"(1), (7c) cmd/app-cdaemon, " + r.Key, path, r.Key})
		}
	}
	var out []Binary
	for _, e := range list {
		b, err := ReadBinary(e.name, e.path)
		if err != nil {
			return out, err
		}
		b.Recipe = e.recipe
		out = append(out, b)
	}
	return out, nil
}
