package e2e

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestSoakShort runs `gatehouse dev soak` for 20 s with 5 s tokens: the
// command starts its own loopback server, the fleet's tokens expire and
// the devices reconnect with new ones, and the run ends with the sample
// table, the fleet summary and a verdict.
func TestSoakShort(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the soak run takes 20 s")
	}
	out, err := exec.CommandContext(t.Context(), binary, "dev", "soak", "--duration", "20s", "--things", "4", "--rate", "4",
		"--token-ttl", "5s", "--interval", "2s").CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("soak: %v\n%s", err, text)
	}
	after := regexp.MustCompile(`(?m)^\s+after\s+\S+\s+\S+\s+\d+\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$`).FindStringSubmatch(text)
	if after == nil {
		t.Fatalf("no final sample row:\n%s", text)
	}
	connects, _ := strconv.Atoi(after[2])
	kicked, _ := strconv.Atoi(after[3])
	if kicked < 4 || connects < 8 {
		t.Errorf("after 20 s of 5 s tokens: %d connects, %d expiry disconnects; want at least 8 and 4 (every device reconnected)\n%s", connects, kicked, text)
	}
	for _, want := range []string{"errors 0", "trend over the second half", "verdict: "} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if rows := regexp.MustCompile(`(?m)^\s+\d+s\s`).FindAllString(text, -1); len(rows) < 8 {
		t.Errorf("%d sample rows, want at least 8:\n%s", len(rows), text)
	}
	for _, bad := range [][]string{{"--duration", "1h", "--things", "0"}, {"--duration", "48h"}} {
		if out, err := exec.CommandContext(t.Context(), binary, append([]string{"soak"}, bad...)...).CombinedOutput(); err == nil {
			t.Errorf("soak %v succeeded:\n%s", bad, out)
		}
	}
}
