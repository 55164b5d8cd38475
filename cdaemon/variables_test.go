package cdaemon_test

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/cdaemon/cdaemon/cdaemon"
)

// The README's environment table names exactly the variables of the one
// table (csrc/variables.h): a variable added there and not documented, or
// documented and not parsed, fails here (issue 12).
func TestVariablesMatchREADME(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n## Environment")
	if start < 0 {
		t.Fatal("README has no \"## Environment\" section")
	}
	section := text[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	name := regexp.MustCompile("`(CDAEMON(?:_[A-Z_]+)?)`")
	var documented []string
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `CDAEMON") {
			continue
		}
		first := strings.SplitN(line, "|", 3)[1]
		for _, m := range name.FindAllStringSubmatch(first, -1) {
			documented = append(documented, m[1])
		}
	}
	var table []string
	for _, v := range cdaemon.Variables() {
		table = append(table, v.Name)
		if v.Format == "" || v.Default == "" || v.Meaning == "" || v.Sample == "" {
			t.Errorf("%s: an empty column in csrc/variables.h: %+v", v.Name, v)
		}
	}
	sort.Strings(documented)
	sort.Strings(table)
	if strings.Join(documented, " ") != strings.Join(table, " ") {
		t.Errorf("README's environment table names\n%v\ncsrc/variables.h has\n%v", documented, table)
	}
}

// Every variable of the table reaches Config: set alone to its sample, it
// changes what ParseEnv returns (a Config field missing for it would not).
func TestEveryVariableInConfig(t *testing.T) {
	for _, v := range cdaemon.Variables() {
		if v.Name == "CDAEMON" {
			continue // the trigger is not configuration
		}
		t.Run(v.Name, func(t *testing.T) {
			for _, kv := range os.Environ() {
				if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "CDAEMON_") {
					t.Setenv(k, "")
					os.Unsetenv(k)
				}
			}
			def, _, err := cdaemon.ParseEnv()
			if err != nil {
				t.Fatal(err)
			}
			t.Setenv(v.Name, v.Sample)
			got, set, err := cdaemon.ParseEnv()
			if err != nil {
				t.Fatalf("%s=%s: %v", v.Name, v.Sample, err)
			}
			if !set[v.Name] {
				t.Errorf("ParseEnv does not report %s as set", v.Name)
			}
			if reflect.DeepEqual(got, def) {
				t.Errorf("%s=%s leaves Config at its default %+v: no field carries it", v.Name, v.Sample, got)
			}
		})
	}
}
