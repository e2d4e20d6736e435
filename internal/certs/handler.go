package certs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/jsonbody"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

// DeviceTokenScheme is the Authorization scheme of POST /register
// (Authorization: DeviceToken <token>).
const DeviceTokenScheme = "DeviceToken"

// DevicePatterns are the ServeMux patterns DeviceHandler serves; mount the
// handler on each.
func DevicePatterns() []string {
	return []string{"POST /register", "GET /ca", "GET /crl", "GET /crl/{ca}"}
}

// DeviceHandler serves the public device endpoints:
//
//	POST /register   the registration gateway
//	GET  /ca         the CA chain, PEM (issuing certificate, then root)
//	GET  /crl        the CA's current CRL, DER (?format=pem for PEM)
//	GET  /crl/{ca}   the same for CA name "gatehouse"
func (s *Service) DeviceHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /register", s.serveRegister)
	mux.HandleFunc("GET /ca", s.serveCA)
	mux.HandleFunc("GET /crl", s.serveCRL)
	mux.HandleFunc("GET /crl/{ca}", s.serveCRL)
	return mux
}

// RegisterResponse is the 200 answer of POST /register.
type RegisterResponse struct {
	CertificateData CertificateData   `json:"certificateData"`
	RootCA          string            `json:"rootCa"`
	CertificateID   string            `json:"certificateId"`
	ThingName       string            `json:"thingName"`
	Endpoints       map[string]string `json:"endpoints"`
}

// CertificateData is the certificate and key pair of a RegisterResponse.
type CertificateData struct {
	PEM     string  `json:"pem"`
	KeyPair KeyPair `json:"key_pair"`
}

// KeyPair holds the PEM keys; PrivateKey is empty when the device sent a
// CSR and kept its key.
type KeyPair struct {
	PublicKey  string `json:"public_key"`
	PrivateKey string `json:"private_key,omitempty"`
}

// registerError is the registration contract's error body.
type registerError struct {
	Status bool   `json:"status"`
	Error  string `json:"error"`
}

func writeDeviceJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Service) serveRegister(w http.ResponseWriter, r *http.Request) {
	if ok, wait := s.cfg.RegisterPerIP.AllowAddr(r.RemoteAddr); !ok {
		s.log.Info("register refused", "status", http.StatusTooManyRequests, "remote", r.RemoteAddr, "err", "registerPerIP limit")
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
		writeDeviceJSON(w, http.StatusTooManyRequests, registerError{Status: false, Error: "too many registrations from this address; retry later"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	resp, err := s.register(ctx, w, r)
	if err != nil {
		status, msg := registerStatus(err)
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		s.log.Log(ctx, level, "register refused", "status", status, "remote", r.RemoteAddr, "err", err)
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", DeviceTokenScheme)
		}
		writeDeviceJSON(w, status, registerError{Status: false, Error: msg})
		return
	}
	writeDeviceJSON(w, http.StatusOK, resp)
}

func (s *Service) register(ctx context.Context, w http.ResponseWriter, r *http.Request) (*RegisterResponse, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, DeviceTokenScheme) || strings.TrimSpace(token) == "" || strings.Contains(strings.TrimSpace(token), " ") {
		return nil, errors.Join(ErrBadToken, errors.New("want Authorization: DeviceToken <token>"))
	}
	var req RegisterRequest
	if err := decodeStrict(w, r, s.cfg.MaxRegisterBody, &req); err != nil {
		return nil, err
	}
	reg, err := s.Register(ctx, strings.TrimSpace(token), req)
	if err != nil {
		return nil, err
	}
	return &RegisterResponse{
		CertificateData: CertificateData{PEM: reg.CertificatePEM, KeyPair: KeyPair{PublicKey: reg.PublicKeyPEM, PrivateKey: reg.PrivateKeyPEM}},
		RootCA:          reg.RootCAPEM,
		CertificateID:   reg.Certificate.Fingerprint,
		ThingName:       reg.Thing.Name,
		Endpoints:       nonNilMap(reg.Endpoints),
	}, nil
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// badRequest is a request the device must fix; its message is shown.
type badRequest struct {
	status int
	msg    string
}

func (e *badRequest) Error() string { return e.msg }

// decodeStrict reads one JSON object (package jsonbody's rules) and turns
// a refusal into the registration gateway's answer.
func decodeStrict(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	err := jsonbody.Read(r.Header.Get("Content-Type"), r.Body, limit, v, jsonbody.Options{})
	je, ok := errors.AsType[*jsonbody.Error](err)
	switch {
	case !ok:
		return err
	case je.Reason == jsonbody.MediaType:
		return &badRequest{http.StatusUnsupportedMediaType, je.Message}
	case je.Reason == jsonbody.TooLarge:
		return &badRequest{http.StatusRequestEntityTooLarge, "request body is too large"}
	case je.Reason == jsonbody.Empty:
		return &badRequest{http.StatusBadRequest, `request body is empty: want {"thingName": ..., "version": ...}`}
	}
	return &badRequest{http.StatusBadRequest, je.Message}
}

// registerStatus maps a registration error to the registration contract's answer.
func registerStatus(err error) (int, string) {
	var (
		bad      *badRequest
		inv      *registry.InvalidError
		request  *pki.RequestError
		rejected *TokenRejectedError
	)
	switch {
	case errors.As(err, &bad):
		return bad.status, bad.msg
	case errors.Is(err, ErrBadToken):
		return http.StatusUnauthorized, "Unauthorized: missing or invalid DeviceToken"
	case errors.As(err, &rejected):
		return http.StatusForbidden, "registration token not accepted: " + rejected.Detail
	case errors.Is(err, ErrThingExists):
		var te *ThingExistsError
		if errors.As(err, &te) {
			return http.StatusBadRequest, fmt.Sprintf("Thing exists, exiting: %q is registered already", te.Name)
		}
		return http.StatusBadRequest, "Thing exists, exiting"
	case errors.As(err, &inv):
		return http.StatusBadRequest, inv.Error()
	case errors.As(err, &request):
		return http.StatusBadRequest, "csr: " + request.Detail
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "request cancelled or timed out"
	}
	return http.StatusInternalServerError, "internal error"
}

func (s *Service) serveCA(w http.ResponseWriter, r *http.Request) {
	ca, err := s.CA(r.Context())
	if err != nil {
		s.log.ErrorContext(r.Context(), "serve CA", "err", err)
		http.Error(w, "CA unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(ca.ChainPEM())
}

func (s *Service) serveCRL(w http.ResponseWriter, r *http.Request) {
	if name := r.PathValue("ca"); name != "" && name != OwnCA {
		http.Error(w, "no CRL for CA "+truncate(name)+": only Gatehouse's own CA ("+OwnCA+") publishes one", http.StatusNotFound)
		return
	}
	der, err := s.CRL(r.Context())
	if err != nil {
		s.log.ErrorContext(r.Context(), "serve CRL", "err", err)
		http.Error(w, "CRL unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=60")
	if r.URL.Query().Get("format") == "pem" {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(pki.EncodeCRLPEM(der))
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	_, _ = w.Write(der)
}
