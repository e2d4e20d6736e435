//go:build ignore

// testsummary reads `go test -json` on standard input and prints what a
// plain `go test` would (each package's result, and the output of failing
// tests), then which tests were skipped and why, grouped by reason: the end
// of `make test-short`. It exits 1 when a test or build failed or when no
// test ran.
//
//	go test -short -json ./... | go run scripts/testsummary.go
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// module is the prefix left out of package paths.
const module = "github.com/gatehouse-iot/gatehouse"

// skipLine is the line t.Skip prints: "    file_test.go:12: reason".
var skipLine = regexp.MustCompile(`^\s+\S+\.go:\d+: (.*)$`)

func main() {
	os.Exit(run(os.Stdin, os.Stdout))
}

func run(in io.Reader, out io.Writer) int {
	type key struct{ pkg, test string }
	buffered := map[key][]string{}
	skipped := map[string][]string{} // reason -> package.Test
	failed, ran := false, 0
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// Not an event (go itself failing before the tests): pass it on.
			fmt.Fprintln(out, sc.Text())
			failed = true
			continue
		}
		k := key{e.Package, e.Test}
		switch {
		case e.Action == "build-output":
			fmt.Fprint(out, e.Output)
		case e.Action == "build-fail":
			failed = true
		case e.Test == "" && e.Action == "output":
			if e.Output != "PASS\n" && !strings.HasPrefix(e.Output, "=== ") {
				fmt.Fprint(out, e.Output)
			}
		case e.Test == "" && e.Action == "fail":
			failed = true
		case e.Test == "":
			// A package's own start, pass or skip (no test files).
		case e.Action == "output":
			buffered[k] = append(buffered[k], e.Output)
		case e.Action == "pass":
			ran++
			delete(buffered, k)
		case e.Action == "fail":
			ran++
			failed = true
			for _, l := range buffered[k] {
				fmt.Fprint(out, l)
			}
			delete(buffered, k)
		case e.Action == "skip":
			reason := "no reason given"
			for _, l := range buffered[k] {
				if m := skipLine.FindStringSubmatch(strings.TrimRight(l, "\n")); m != nil {
					reason = m[1]
				}
			}
			pkg := strings.TrimPrefix(strings.TrimPrefix(e.Package, module), "/")
			skipped[reason] = append(skipped[reason], pkg+"."+e.Test)
			delete(buffered, k)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(out, "testsummary:", err)
		return 1
	}
	if len(skipped) > 0 {
		reasons := make([]string, 0, len(skipped))
		n := 0
		for r, tests := range skipped {
			reasons = append(reasons, r)
			n += len(tests)
		}
		sort.Slice(reasons, func(i, j int) bool {
			a, b := skipped[reasons[i]], skipped[reasons[j]]
			if len(a) != len(b) {
				return len(a) > len(b)
			}
			return reasons[i] < reasons[j]
		})
		fmt.Fprintf(out, "\n%d tests skipped, by reason (make test sets up what they need):\n", n)
		for _, r := range reasons {
			tests := skipped[r]
			sort.Strings(tests)
			shown := tests
			if len(shown) > 3 {
				shown = shown[:3]
			}
			more := ""
			if len(tests) > len(shown) {
				more = fmt.Sprintf(", and %d more", len(tests)-len(shown))
			}
			fmt.Fprintf(out, "  %4d  %s\n        %s%s\n", len(tests), r, strings.Join(shown, ", "), more)
		}
	}
	if ran == 0 {
		fmt.Fprintln(out, "testsummary: no test ran")
		return 1
	}
	if failed {
		return 1
	}
	return 0
}
