package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

// MaxHTTPPayload bounds an HTTPS publish body, as AWS IoT does (128 KB).
const MaxHTTPPayload = 128 << 10

// httpError is an HTTPS publish failure; the answer body follows the AWS
// IoT data plane: {"message": ..., "traceId": ...}.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// PublishHandler serves POST /topics/{topic}?qos=0|1&retain=true|false,
// authenticated by a bearer access token or by x-amz-customauthorizer-name,
// -signature and the authorizer's token header. It answers 401 for bad
// credentials and 403 when policy denies iot:Publish (or
// iot:RetainPublish), and delivers the body to subscribers otherwise.
func (b *Broker) PublishHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trace := strconv.FormatInt(b.now().UnixNano(), 36)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("x-amzn-RequestId", trace)
		err := b.httpPublish(r)
		status, msg := http.StatusOK, "OK"
		if err != nil {
			var he *httpError
			if errors.As(err, &he) {
				status, msg = he.status, he.msg
			} else {
				status, msg = http.StatusInternalServerError, "internal error"
				b.log.Error("https publish", "err", err)
			}
		}
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", oauth.BearerChallenge(r))
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": msg, "traceId": trace})
	})
}

func (b *Broker) httpPublish(r *http.Request) error {
	if r.Method != http.MethodPost {
		return &httpError{http.StatusMethodNotAllowed, "use POST"}
	}
	topic := r.PathValue("topic")
	if topic == "" {
		topic = strings.TrimPrefix(r.URL.Path, "/topics/")
	}
	if err := policy.ValidateTopicName(topic); err != nil {
		return &httpError{http.StatusBadRequest, "invalid topic: " + err.Error()}
	}
	if limit := b.topicOverLimit(topic); limit != "" {
		b.cfg.Rejections.Inc(limit)
		return &httpError{http.StatusBadRequest, "invalid topic: over " + limit}
	}
	q := r.URL.Query()
	qos := byte(0)
	switch q.Get("qos") {
	case "", "0":
	case "1":
		qos = 1
	default:
		return &httpError{http.StatusBadRequest, "qos must be 0 or 1"}
	}
	retain := false
	if s := q.Get("retain"); s != "" {
		v, err := strconv.ParseBool(s)
		if err != nil {
			return &httpError{http.StatusBadRequest, "retain must be true or false"}
		}
		retain = v
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	creds := authn.Credentials{
		AuthorizerName:      r.Header.Get("x-amz-customauthorizer-name"),
		AuthorizerSignature: r.Header.Get("x-amz-customauthorizer-signature"),
		TokenFromHeader: func(key string) string {
			if v := r.Header.Get(key); v != "" {
				return v
			}
			return q.Get(key)
		},
	}
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		creds.Bearer = strings.TrimSpace(tok)
	}
	if r.TLS != nil {
		creds.PeerCertificates = r.TLS.PeerCertificates
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		creds.SourceIP = ap.Addr().Unmap()
	}
	id, err := b.cfg.Authn.Authenticate(ctx, creds)
	if err != nil {
		b.log.Info("https publish refused", "topic", topic, "err", err)
		if errors.Is(err, authn.ErrNotAuthorized) {
			return &httpError{http.StatusForbidden, "Forbidden"}
		}
		return &httpError{http.StatusUnauthorized, "Unauthorized"}
	}
	res, err := b.cfg.Registry.ResolvePolicies(ctx, id.Subject, b.cfg.Policy)
	if err != nil {
		return err
	}
	// HTTPS has no client id, so (as in AWS IoT) neither ${iot:ClientId}
	// nor thing variables resolve.
	pctx := registry.PolicyContext(res, "", creds.SourceIP, id.Certificate, id.Token)
	pctx.Thing = nil
	bound := res.Set.Bind(pctx)
	actx := events.WithActor(ctx, id.Principal)
	if b.hook.reservedTopic(topic) || !bound.Allowed(policy.ActionPublish, topic) || (retain && !bound.Allowed(policy.ActionRetainPublish, topic)) {
		b.record(actx, "broker.denied", "topic/"+topic, map[string]any{"action": "iot:Publish", "resource": topic, "via": "https"})
		return &httpError{http.StatusForbidden, "Forbidden"}
	}
	limit := MaxHTTPPayload
	if b.cfg.MaxMessageSize > 0 {
		limit = b.cfg.MaxMessageSize
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		return &httpError{http.StatusBadRequest, "read body: " + err.Error()}
	}
	if len(body) > limit {
		b.cfg.Rejections.Inc("mqtt.maxMessageSize")
		return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("payload larger than %d bytes", limit)}
	}
	if err := b.server.Publish(topic, body, retain, qos); err != nil {
		return err
	}
	return nil
}
