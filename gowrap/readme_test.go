package gowrap_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

// TestReadmeGoBlocksVet builds and vets every Go program in the README, each
// in a module of its own that uses this checkout through a replace
// directive, as the README tells a new user to (issue 13: quick starts
// safe to copy). The first hour's program also runs, exactly as written,
// in scripts/first-hour.sh (make test).
func TestReadmeGoBlocksVet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds modules")
	}
	root := proctest.RepoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?ms)^```go\n(.*?)^```$").FindAllSubmatch(readme, -1)
	if len(blocks) < 2 {
		t.Fatalf("README has %d Go blocks, want the first hour's and the cdaemon package's", len(blocks))
	}
	for i, b := range blocks {
		t.Run(fmt.Sprint("block", i+1), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "main.go"), b[1], 0o644); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{
				{"mod", "init", "example.com/readme"},
				{"mod", "edit", "-replace", "github.com/cdaemon/cdaemon=" + root},
				{"mod", "tidy"},
				{"vet", "."},
				{"build", "-o", "app", "."},
			} {
				cmd := exec.Command("go", args...)
				cmd.Dir = dir
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("README Go block %d: go %v: %v\n%s\n--- the block:\n%s", i+1, args, err, out, b[1])
				}
			}
		})
	}
}
