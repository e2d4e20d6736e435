package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDeviceCommandsOffline(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		env := &Env{Getenv: func(string) string { return "" }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut}
		err := runDevice(context.Background(), env, args)
		return out.String(), err
	}
	tests := []struct {
		name      string
		args      []string
		wantUsage bool
	}{
		{"no verb", nil, true},
		{"unknown verb", []string{"fly"}, true},
		{"register without token", []string{"register", "--state-dir", dir, "--name", "d1"}, true},
		{"publish without topic", []string{"publish", "--state-dir", dir, "--name", "d1"}, true},
		{"subscribe without topic", []string{"subscribe", "--state-dir", dir, "--name", "d1"}, true},
	}
	for _, tc := range tests {
		_, err := run(tc.args...)
		if got := errors.Is(err, errUsage); got != tc.wantUsage {
			t.Errorf("%s: err %v, want usage error %v", tc.name, err, tc.wantUsage)
		}
	}
	out, err := run("jwk", "--state-dir", dir, "--name", "d1")
	if err != nil {
		t.Fatal(err)
	}
	var jwk map[string]any
	if err := json.Unmarshal([]byte(out), &jwk); err != nil || jwk["kty"] != "EC" || jwk["d"] != nil || jwk["kid"] == nil {
		t.Errorf("device jwk printed %q (%v), want a public EC JWK with kid", out, err)
	}
	// The name is remembered; the key is stable.
	again, err := run("jwk", "--state-dir", dir)
	if err != nil || again != out {
		t.Errorf("second device jwk = %q %v, want the same key", again, err)
	}
}
