package cdaemon

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestCsrcHash fails when csrc/ changed but csrc_hash.h was not
// regenerated (run make): cmd/go would then keep serving a cached build
// of this package compiled from the old C sources.
func TestCsrcHash(t *testing.T) {
	var names []string
	for _, pat := range []string{"*.c", "*.h"} {
		m, err := filepath.Glob(filepath.Join("..", "csrc", pat))
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, m...)
	}
	sort.Slice(names, func(i, j int) bool { return filepath.Base(names[i]) < filepath.Base(names[j]) })
	h := sha256.New()
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		h.Write([]byte(filepath.Base(n) + "\n"))
		h.Write(b)
	}
	want := hex.EncodeToString(h.Sum(nil))
	hdr, err := os.ReadFile("csrc_hash.h")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(hdr), `"`+want+`"`) {
		t.Fatalf("cdaemon/csrc_hash.h is stale: csrc/ hashes to %s; run make", want)
	}
}
