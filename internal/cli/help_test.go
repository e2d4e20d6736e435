package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestEveryCommandAnswersHelp: `gatehouse CMD -h` (and --help) prints that
// command's usage and exits 0, for every command; a resource's verbs and
// a verb shared by several resources (get, show, delete) name the command
// actually run.
func TestEveryCommandAnswersHelp(t *testing.T) {
	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		env := &Env{Args: args, Getenv: func(string) string { return "" }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out}
		return Main(context.Background(), env), out.String()
	}
	for name := range commands() {
		for _, h := range []string{"-h", "--help"} {
			code, out := run(name, h)
			if code != 0 || !strings.Contains(out, "Usage: gatehouse "+name) || strings.Contains(out, "unknown") {
				t.Errorf("gatehouse %s %s = exit %d:\n%s", name, h, code, out)
			}
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"things", "-h"}, "Usage: gatehouse things <create|delete|get|list|set-secret|update>"},
		{[]string{"lobby", "show", "-h"}, "Usage: gatehouse lobby show NAME"},
		{[]string{"things", "get", "--help"}, "Usage: gatehouse things get NAME"},
		{[]string{"policies", "delete", "-h"}, "Usage: gatehouse policies delete NAME"},
		{[]string{"things", "create", "-h"}, "Usage: gatehouse things create NAME [--type T]"},
		{[]string{"help"}, "Usage: gatehouse <command>"},
	} {
		if code, out := run(tc.args...); code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("gatehouse %s = exit %d:\n%s\nwant %q", strings.Join(tc.args, " "), code, out, tc.want)
		}
	}
}
