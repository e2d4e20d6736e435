package certs

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/pki"
)

// serverCertValidity is the lifetime of the listeners' server certificate;
// it is renewed in memory after two thirds of it.
const serverCertValidity = 30 * 24 * time.Hour

// ServerTLSConfig returns a TLS configuration for Gatehouse's listeners
// (MQTT over TLS, WSS, HTTPS): a server certificate issued by Gatehouse's
// CA for hosts (DNS names or IP addresses; devices trust it through the
// rootCa they received at registration), renewed in memory before it
// expires, and client certificates requested but not verified by the TLS
// layer - AuthenticateCertificate verifies them after the handshake, so
// manufacturer CAs and just-in-time registration apply. Go's TLS server
// still checks that the client holds the certificate's private key.
func (s *Service) ServerTLSConfig(ctx context.Context, hosts []string) (*tls.Config, error) {
	if len(hosts) == 0 {
		return nil, fmt.Errorf("certs: server certificate needs at least one host name")
	}
	var (
		mu      sync.Mutex
		current *tls.Certificate
		renewAt time.Time
	)
	get := func() (*tls.Certificate, error) {
		mu.Lock()
		defer mu.Unlock()
		if current != nil && s.now().Before(renewAt) {
			return current, nil
		}
		c, err := s.serverCertificate(context.WithoutCancel(ctx), hosts)
		if err != nil {
			if current != nil { // keep serving the old one while it lasts
				s.log.Error("certs: renew server certificate", "err", err)
				return current, nil
			}
			return nil, err
		}
		current = c
		renewAt = s.now().Add(c.Leaf.NotAfter.Sub(s.now()) * 2 / 3)
		return current, nil
	}
	if _, err := get(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// TLS 1.2 offers forward-secret AEAD suites only (no CBC-SHA1);
		// TLS 1.3's suites are all AEAD and not configurable.
		CipherSuites: aeadSuites(),
		ClientAuth:   tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return get()
		},
	}, nil
}

// aeadSuites are the TLS 1.2 cipher suites the listeners accept: ECDHE
// with AES-GCM or ChaCha20-Poly1305, for ECDSA and RSA certificates.
func aeadSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

func (s *Service) serverCertificate(ctx context.Context, hosts []string) (*tls.Certificate, error) {
	cur, err := s.currentCA(ctx)
	if err != nil {
		return nil, err
	}
	opts := pki.IssueOptions{ServerAuth: true, Validity: serverCertValidity}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			opts.IPAddresses = append(opts.IPAddresses, ip)
		} else {
			opts.DNSNames = append(opts.DNSNames, h)
		}
	}
	kp, err := cur.ca.IssueKeyPair(hosts[0], opts)
	if err != nil {
		return nil, fmt.Errorf("certs: issue server certificate: %w", err)
	}
	chain := [][]byte{kp.Certificate.Raw}
	for _, c := range cur.ca.Chain()[:len(cur.ca.Chain())-1] { // intermediates, not the root
		chain = append(chain, c.Raw)
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: kp.PrivateKey, Leaf: kp.Certificate}, nil
}
