package fleetprov

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

// The fleet provisioning MQTT API's topics. A request is published to
// <operation>/<format>; its answer goes to <operation>/<format>/accepted
// or /rejected, to the requesting connection only.
const (
	certificatesPrefix = "$aws/certificates/"
	templatesPrefix    = "$aws/provisioning-templates/"
)

// Operations of the API.
const (
	OpCreateKeysAndCertificate = "CreateKeysAndCertificate"
	OpCreateCertificateFromCsr = "CreateCertificateFromCsr"
	OpRegisterThing            = "RegisterThing"
)

// Owns reports whether topic (a name or a filter) lies in the fleet
// provisioning topic space: requests, which the server answers and
// nobody else receives, and answers, which only the server sends.
func Owns(topic string) bool {
	return strings.HasPrefix(topic, certificatesPrefix) || strings.HasPrefix(topic, templatesPrefix)
}

// Request is a parsed request topic.
type Request struct {
	Op       string
	Template string // RegisterThing's template
	Format   string // "json" or "cbor"
}

// ParseTopic reports the request a topic name is, if it is one.
func ParseTopic(topic string) (Request, bool) {
	var r Request
	var rest string
	if s, ok := strings.CutPrefix(topic, certificatesPrefix+"create/"); ok {
		r.Op, rest = OpCreateKeysAndCertificate, s
	} else if s, ok := strings.CutPrefix(topic, certificatesPrefix+"create-from-csr/"); ok {
		r.Op, rest = OpCreateCertificateFromCsr, s
	} else if s, ok := strings.CutPrefix(topic, templatesPrefix); ok {
		name, tail, ok := strings.Cut(s, "/provision/")
		if !ok || !registry.ValidName(name) {
			return Request{}, false
		}
		r.Op, r.Template, rest = OpRegisterThing, name, tail
	} else {
		return Request{}, false
	}
	if rest != "json" && rest != "cbor" {
		return Request{}, false
	}
	r.Format = rest
	return r, true
}

// Topic is the request's topic.
func (r Request) Topic() string {
	switch r.Op {
	case OpCreateKeysAndCertificate:
		return certificatesPrefix + "create/" + r.Format
	case OpCreateCertificateFromCsr:
		return certificatesPrefix + "create-from-csr/" + r.Format
	}
	return templatesPrefix + r.Template + "/provision/" + r.Format
}

// requestBody is every operation's request fields.
type requestBody struct {
	CertificateSigningRequest string            `json:"certificateSigningRequest"`
	CertificateOwnershipToken string            `json:"certificateOwnershipToken"`
	Parameters                map[string]string `json:"parameters"`
}

// maxRequestBytes bounds a request payload.
const maxRequestBytes = 64 << 10

// Answer serves one request published by claim c to topic and returns the
// topic and payload of the answer for that connection, or ok false when
// topic is no request (nothing is answered).
func (s *Service) Answer(ctx context.Context, c Claim, topic string, payload []byte) (replyTopic string, reply []byte, ok bool) {
	r, ok := ParseTopic(topic)
	if !ok {
		return "", nil, false
	}
	ctx = events.WithActor(ctx, c.Principal)
	out, err := s.serve(ctx, c, r, payload)
	suffix := "/accepted"
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			s.log.ErrorContext(ctx, "fleetprov: request failed", "op", r.Op, "client", c.ClientID, "principal", c.Principal, "err", err)
			e = reject(500, CodeInternal, "internal error; retry later")
		} else {
			s.log.InfoContext(ctx, "fleetprov: request rejected", "op", r.Op, "client", c.ClientID, "principal", c.Principal, "code", e.Code, "why", e.Message)
		}
		out, suffix = e, "/rejected"
	}
	b, err := encode(r.Format, out)
	if err != nil {
		s.log.ErrorContext(ctx, "fleetprov: encode answer", "op", r.Op, "err", err)
		b, _ = encode(r.Format, reject(500, CodeInternal, "internal error"))
		suffix = "/rejected"
	}
	return r.Topic() + suffix, b, true
}

func (s *Service) serve(ctx context.Context, c Claim, r Request, payload []byte) (any, error) {
	if len(payload) > maxRequestBytes {
		return nil, reject(400, CodeInvalidPayload, "the request is larger than %d bytes", maxRequestBytes)
	}
	var in requestBody
	if err := decode(r.Format, payload, &in); err != nil {
		return nil, reject(400, CodeInvalidPayload, "the request is not a valid %s object: %v", strings.ToUpper(r.Format), err)
	}
	switch r.Op {
	case OpCreateKeysAndCertificate:
		return s.CreateCertificate(ctx, c, "")
	case OpCreateCertificateFromCsr:
		if in.CertificateSigningRequest == "" {
			return nil, reject(400, CodeInvalidParameters, "certificateSigningRequest is required")
		}
		created, err := s.CreateCertificate(ctx, c, in.CertificateSigningRequest)
		if err != nil {
			return nil, err
		}
		created.PrivateKey = ""
		return created, nil
	}
	if in.CertificateOwnershipToken == "" {
		return nil, reject(400, CodeInvalidParameters, "certificateOwnershipToken is required")
	}
	return s.RegisterThing(ctx, c, r.Template, in.CertificateOwnershipToken, in.Parameters)
}

// decode reads a request object of format (empty payload: no fields).
func decode(format string, payload []byte, v *requestBody) error {
	if len(strings.TrimSpace(string(payload))) == 0 {
		return nil
	}
	if format == "cbor" {
		obj, err := decodeCBOR(payload)
		if err != nil {
			return err
		}
		// Through JSON, so both formats have one set of field rules.
		b, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		payload = b
	}
	return json.Unmarshal(payload, v)
}

// encode writes an answer object in format.
func encode(format string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || format != "cbor" {
		return b, err
	}
	var obj any
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, err
	}
	return encodeCBOR(obj)
}
