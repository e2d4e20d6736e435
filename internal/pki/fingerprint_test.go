package pki

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestFingerprint(t *testing.T) {
	ca := newTestCA(t, CAOptions{})
	sum := sha256.Sum256(ca.Root().Raw)
	if got, want := Fingerprint(ca.Root()), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Fingerprint = %s, want %s", got, want)
	}
}

func TestParseFingerprint(t *testing.T) {
	const want = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	colons := strings.ToUpper("01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef")
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"lowercase", want, true},
		{"uppercase", strings.ToUpper(want), true},
		{"colons", colons, true},
		{"lowercase colons", strings.ToLower(colons), true},
		{"white space", "  " + want + "\n", true},
		{"sha256 label", "sha256:" + want, true},
		{"openssl output", "SHA256 Fingerprint=" + colons + "\n", true},
		{"openssl 3 output", "sha256 Fingerprint=" + colons, true},
		{"empty", "", false},
		{"short", want[:62], false},
		{"long", want + "00", false},
		{"non-hex", strings.Replace(want, "0", "g", 1), false},
		{"misplaced colon", "0" + colons[:len(colons)-1], false},
		{"dashes", strings.ReplaceAll(colons, ":", "-"), false},
		{"SHA-1 length", want[:40], false},
		{"huge", strings.Repeat("a", 10000), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFingerprint(tc.in)
			if !tc.ok {
				if err == nil || !errors.Is(err, ErrInvalidFingerprint) {
					t.Errorf("ParseFingerprint(%q) = %q, %v; want ErrInvalidFingerprint", tc.in, got, err)
				}
				return
			}
			if err != nil || got != want {
				t.Errorf("ParseFingerprint(%q) = %q, %v; want %q, nil", tc.in, got, err, want)
			}
		})
	}
}
