package thing

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Registration is what the server answered to Register.
type Registration struct {
	CertificateID string
	Certificate   *x509.Certificate
	// Endpoints are the server's endpoints ("https", "mqtt", "mqtts").
	Endpoints map[string]string
}

// HTTPError is a non-successful answer of the server.
type HTTPError struct {
	StatusCode int
	// Code and Description are the OAuth error fields, when present.
	Code        string
	Description string
	// Body is the start of the answer, for diagnostics.
	Body string
	// RetryAfter is the server's Retry-After, or 0.
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	switch {
	case e.Code != "" && e.Description == "":
		return fmt.Sprintf("thing: server answered %d: %s", e.StatusCode, e.Code)
	case e.Code != "":
		return fmt.Sprintf("thing: server answered %d: %s: %s", e.StatusCode, e.Code, e.Description)
	case e.Body != "":
		return fmt.Sprintf("thing: server answered %d: %s", e.StatusCode, e.Body)
	}
	return fmt.Sprintf("thing: server answered %d", e.StatusCode)
}

// ErrAlreadyRegistered is returned by Register when the state directory
// already holds a certificate.
var ErrAlreadyRegistered = errors.New("thing: already registered")

// Register registers the thing with a registration token (certificate
// vending: POST /register, Authorization: DeviceToken). It
// generates the device key if there is none, sends a CSR for it (the key
// never leaves the device) and stores the certificate, the root CA and the
// server's endpoints.
func (t *Thing) Register(ctx context.Context, deviceToken, version string) (*Registration, error) {
	if deviceToken == "" {
		return nil, errors.New("thing: a registration token is required")
	}
	if _, err := t.readFile(fileCert); err == nil {
		return nil, ErrAlreadyRegistered
	}
	key, err := t.Key()
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: t.Name()}}, key)
	if err != nil {
		return nil, fmt.Errorf("thing: create CSR: %w", err)
	}
	body, err := json.Marshal(map[string]string{
		"thingName": t.Name(), "version": version,
		"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
	})
	if err != nil {
		return nil, fmt.Errorf("thing: encode request: %w", err)
	}
	var out struct {
		CertificateData struct {
			PEM string `json:"pem"`
		} `json:"certificateData"`
		RootCA        string            `json:"rootCa"`
		CertificateID string            `json:"certificateId"`
		Endpoints     map[string]string `json:"endpoints"`
	}
	err = t.send(ctx, "register", func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.server+"/register", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "DeviceToken "+deviceToken)
		req.Header.Set("Content-Type", "application/json")
		return req, nil
	}, &out)
	if err != nil {
		return nil, fmt.Errorf("thing: register: %w", err)
	}
	blk, _ := pem.Decode([]byte(out.CertificateData.PEM))
	if blk == nil {
		return nil, errors.New("thing: register: the answer holds no certificate")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("thing: register: certificate: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, errors.New("thing: register: the certificate is not for the device key")
	}
	if err := t.writeFile(fileCert, []byte(out.CertificateData.PEM)); err != nil {
		return nil, err
	}
	if out.RootCA != "" {
		if err := t.writeFile(fileCA, []byte(out.RootCA)); err != nil {
			return nil, err
		}
	}
	t.mu.Lock()
	t.st.CertificateID = out.CertificateID
	t.st.Endpoints = out.Endpoints
	err = t.saveState()
	t.mu.Unlock()
	if err != nil {
		return nil, err
	}
	t.log.Info("thing: registered", "thing", t.Name(), "certificateId", out.CertificateID)
	return &Registration{CertificateID: out.CertificateID, Certificate: cert, Endpoints: out.Endpoints}, nil
}

func publicKeysEqual(a, b any) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

// send sends the request build makes (anew for every try) with doJSON,
// retrying refusals as the Retry policy says; op names it in logs.
func (t *Thing) send(ctx context.Context, op string, build func() (*http.Request, error), out any) error {
	return t.retry(ctx, op, func() error {
		req, err := build()
		if err != nil {
			return err
		}
		return t.doJSON(req, out)
	})
}

// doJSON sends req and decodes a 2xx JSON answer into out; other answers
// become *HTTPError. Use it through send, which retries.
func (t *Thing) doJSON(req *http.Request, out any) error {
	resp, err := t.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		he := httpError(resp.StatusCode, b)
		he.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), t.now())
		return he
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

func httpError(status int, b []byte) *HTTPError {
	e := &HTTPError{StatusCode: status}
	var o struct {
		Error       any    `json:"error"`
		Description string `json:"error_description"`
		Detail      string `json:"detail"`
	}
	if json.Unmarshal(b, &o) == nil {
		if s, ok := o.Error.(string); ok {
			e.Code, e.Description = s, o.Description
		}
	}
	if e.Code == "" {
		s := strings.TrimSpace(string(b))
		if len(s) > 300 {
			s = s[:300]
		}
		e.Body = s
	}
	return e
}
