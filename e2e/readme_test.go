package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// readmeBlocks returns the ```sh blocks of the README section titled
// title.
func readmeBlocks(t *testing.T, title string) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## "+title+"\n")
	if !ok {
		t.Fatalf("README has no section %q", title)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	var blocks []string
	for _, part := range strings.Split(sec, "```sh\n")[1:] {
		code, _, _ := strings.Cut(part, "```")
		blocks = append(blocks, code)
	}
	return blocks
}

// TestREADMEWalkthrough runs the README's walkthrough ("a device, from registration to publish") as written
// (only the listener ports are the test server's): every command but the
// one shown failing must succeed.
func TestREADMEWalkthrough(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "jq", "openssl", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	s := startServer(t, "--data-dir", t.TempDir())
	blocks := readmeBlocks(t, "Walkthrough: a device, from registration to publish")
	if len(blocks) < 4 {
		t.Fatalf("README walkthrough has %d blocks", len(blocks))
	}
	script := strings.Join(blocks, "\n")
	script = strings.NewReplacer("127.0.0.1:1884", s.MQTT, "127.0.0.1:8883", s.MQTTS, "./gatehouse ", binary+" ").Replace(script)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-x", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GATEHOUSE_SERVER="+s.URL, "GATEHOUSE_TOKEN="+s.Token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("walkthrough: %v\n%s", err, out)
	}
	// The one failure the README shows, and no other.
	var failures []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "gatehouse ") && strings.Contains(line, ": ") {
			failures = append(failures, line)
		}
	}
	if len(failures) != 1 || !strings.Contains(failures[0], "publish to other/x: error publishing: The PUBLISH is not authorized") {
		t.Errorf("failures = %q, want only the denied publish to other/x\n%s", failures, out)
	}
	// The device was at the broker four times (token, certificate, the
	// denied publish, custom authorizer).
	testenv.Eventually(t, 30*time.Second, "four broker.connected events", func() bool {
		return len(s.admin(t, "GET", "/api/v1/events?type=broker.connected&limit=100", "", 200)["items"].([]any)) == 4
	})
	th := s.admin(t, "GET", "/api/v1/things/sensor-1", "", 200)
	if th["thingType"] != "sensor" {
		t.Errorf("thing = %v", th)
	}
}
