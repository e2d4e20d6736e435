package lobby

import (
	"bytes"
	"fmt"
	"strings"

	"rsc.io/qr"

	"github.com/gatehouse-iot/gatehouse/internal/pki"
)

// QRPrefix starts the payload of a lobby QR code: "GH1:" followed by the
// certificate fingerprint, 64 lowercase hex digits. The version number
// leaves room for other payloads later.
const QRPrefix = "GH1:"

// QRPayload is the QR code text for a certificate fingerprint.
func QRPayload(fingerprint string) string { return QRPrefix + fingerprint }

// ParseQR returns the fingerprint in a QR payload ("GH1:<fingerprint>",
// prefix in any case) or in a bare fingerprint in any form
// pki.ParseFingerprint accepts. Errors wrap ErrInvalid.
func ParseQR(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) >= len(QRPrefix) && strings.EqualFold(s[:len(QRPrefix)], QRPrefix) {
		s = s[len(QRPrefix):]
	}
	fp, err := pki.ParseFingerprint(s)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return fp, nil
}

func encodeQR(fingerprint string) (*qr.Code, error) {
	fp, err := ParseQR(fingerprint)
	if err != nil {
		return nil, err
	}
	c, err := qr.Encode(QRPayload(fp), qr.M)
	if err != nil {
		return nil, fmt.Errorf("lobby: QR code: %w", err)
	}
	return c, nil
}

// QRPNG renders the QR code of a fingerprint as PNG.
func QRPNG(fingerprint string) ([]byte, error) {
	c, err := encodeQR(fingerprint)
	if err != nil {
		return nil, err
	}
	c.Scale = 8
	return c.PNG(), nil
}

// QRSVG renders the QR code of a fingerprint as SVG, one module per unit
// with a four-module quiet zone.
func QRSVG(fingerprint string) ([]byte, error) {
	c, err := encodeQR(fingerprint)
	if err != nil {
		return nil, err
	}
	const quiet = 4
	n := c.Size + 2*quiet
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" shape-rendering="crispEdges">`, n, n, n*8, n*8)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n)
	for y := 0; y < c.Size; y++ {
		for x := 0; x < c.Size; x++ {
			if c.Black(x, y) {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x+quiet, y+quiet)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	return b.Bytes(), nil
}
