// Command testsum reads `go test -json` on stdin and prints what a person
// needs from it: one line per package (as go test prints it), the output
// of every failed test, and at the end the count of tests and subtests that
// passed and failed, as "go: P passed, F failed", the line `make test`
// adds up with the C and script counts (issue 13); with a second argument,
// that line is also appended to the file it names. It exits 1 if anything
// failed, including a package that did not build.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is one line of test2json's output (go doc cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

func main() {
	label := "go"
	if len(os.Args) > 1 {
		label = os.Args[1]
	}
	pass, fail, err := summarize(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		fail++
	}
	line := fmt.Sprintf("%s: %d passed, %d failed\n", label, pass, fail)
	fmt.Print(line)
	if len(os.Args) > 2 {
		f, err := os.OpenFile(os.Args[2], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			_, err = f.WriteString(line)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsum:", err)
			os.Exit(1)
		}
	}
	if fail > 0 {
		os.Exit(1)
	}
}

// summarize copies the human part of the stream to w and counts tests.
func summarize(r io.Reader, w io.Writer) (pass, fail int, err error) {
	// Output of each running test, kept until it passes (dropped) or
	// fails (printed).
	outputs := map[string]*strings.Builder{}
	failedIn := map[string]int{} // failed tests per package
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if json.Unmarshal(line, &e) != nil || e.Action == "" {
			// Not test2json: a build error, say. Show it.
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			if e.Test == "" {
				// Package-level lines: "ok pkg 1.2s", "FAIL pkg", panics.
				if s := strings.TrimRight(e.Output, "\n"); s != "PASS" && s != "FAIL" && !strings.HasPrefix(s, "=== ") && s != "" {
					fmt.Fprintln(w, s)
				}
				continue
			}
			b := outputs[key]
			if b == nil {
				b = &strings.Builder{}
				outputs[key] = b
			}
			if b.Len() < 64<<10 {
				b.WriteString(e.Output)
			}
		case "pass", "skip":
			if e.Test != "" && e.Action == "pass" {
				pass++
			}
			delete(outputs, key)
		case "build-output":
			fmt.Fprint(w, e.Output)
		case "fail":
			if e.Test == "" {
				// The package line says it; a package that failed with
				// no failed test (a build error, a crash in TestMain)
				// counts once.
				if failedIn[e.Package] == 0 {
					fail++
				}
				continue
			}
			fail++
			failedIn[e.Package]++
			if b := outputs[key]; b != nil {
				fmt.Fprint(w, b.String())
			}
			delete(outputs, key)
		}
	}
	return pass, fail, sc.Err()
}
