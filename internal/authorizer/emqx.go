package authorizer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

// emqxRequest holds the fields of EMQX's authn and authz templates
// (${clientid}, ${username}, ...). Unknown fields are ignored, so any
// template is accepted.
type emqxRequest struct {
	ClientID string `json:"clientid"`
	Username string `json:"username"`
	Password string `json:"password"`
	PeerHost string `json:"peerhost"`
	// Topic and Action ("publish" or "subscribe") are authz fields, as is
	// Retain ("true"/"false"; EMQX renders ${retain} as a string).
	Topic  string `json:"topic"`
	Action string `json:"action"`
	Retain any    `json:"retain"`
}

// emqxResponse is EMQX's result body.
type emqxResponse struct {
	Result      string `json:"result"`
	IsSuperuser *bool  `json:"is_superuser,omitempty"`
	ExpireAt    int64  `json:"expire_at,omitempty"`
}

const (
	resultAllow  = "allow"
	resultDeny   = "deny"
	resultIgnore = "ignore"
)

// readEMQX decodes a JSON body (POST) or the query/form (GET, or a form
// body).
func readEMQX(r *http.Request) (*emqxRequest, error) {
	var q emqxRequest
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Method == http.MethodPost && (ct == "application/json" || ct == "") {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
		if len(strings.TrimSpace(string(body))) > 0 {
			if err := json.Unmarshal(body, &q); err != nil {
				return nil, fmt.Errorf("decode body: %w", err)
			}
			return &q, nil
		}
	}
	if err := r.ParseForm(); err != nil {
		return nil, fmt.Errorf("parse form: %w", err)
	}
	q = emqxRequest{ClientID: r.Form.Get("clientid"), Username: r.Form.Get("username"), Password: r.Form.Get("password"),
		PeerHost: r.Form.Get("peerhost"), Topic: r.Form.Get("topic"), Action: r.Form.Get("action"), Retain: r.Form.Get("retain")}
	return &q, nil
}

func writeEMQX(w http.ResponseWriter, resp emqxResponse) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
}

func parsePeer(s string) netip.Addr {
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.Unmap()
	}
	return remoteIP(s)
}

// emqxAuthn authenticates a CONNECT, checks iot:Connect and opens the
// session authz requests need.
func (a *Adapters) emqxAuthn(w http.ResponseWriter, r *http.Request) {
	q, err := readEMQX(r)
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if q.Password == "" && !strings.Contains(q.Username, "?") {
		// Nothing for us to check (a certificate client, say): let the
		// next authenticator in EMQX's chain decide.
		writeEMQX(w, emqxResponse{Result: resultIgnore})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	ip := parsePeer(q.PeerHost)
	id, err := a.cfg.Authn.Authenticate(ctx, authn.Credentials{ClientID: q.ClientID, Username: q.Username, Password: []byte(q.Password), SourceIP: ip})
	if err != nil {
		if !errors.Is(err, authn.ErrBadCredentials) && !errors.Is(err, authn.ErrNotAuthorized) {
			a.log.Error("emqx authn", "client", truncate(q.ClientID), "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError) // EMQX: ignore
			return
		}
		a.log.Info("emqx authn denied", "client", truncate(q.ClientID), "username", logName(q.Username), "why", err)
		writeEMQX(w, emqxResponse{Result: resultDeny})
		return
	}
	b, err := a.bind(ctx, id.Subject, id, q.ClientID, q.ClientID, ip)
	if err != nil {
		a.log.Info("emqx authn denied", "client", truncate(q.ClientID), "principal", id.Principal, "why", err)
		writeEMQX(w, emqxResponse{Result: resultDeny})
		return
	}
	if !b.Allowed(policy.ActionConnect, q.ClientID) {
		a.log.Info("emqx authn denied", "client", truncate(q.ClientID), "principal", id.Principal, "why", "iot:Connect denied")
		writeEMQX(w, emqxResponse{Result: resultDeny})
		return
	}
	// Usernames of custom-authorizer clients carry the token; the session
	// is keyed by what EMQX will send back, so that does not matter.
	if err := a.putSession(ctx, brokerEMQX, q.ClientID, q.Username, a.newSession(id, q.ClientID, ip)); err != nil {
		a.log.Error("emqx authn", "client", truncate(q.ClientID), "err", err)
		status := http.StatusInternalServerError
		if errors.Is(err, errTooManySessions) {
			status = http.StatusServiceUnavailable
		}
		http.Error(w, "session not stored", status) // EMQX: ignore
		return
	}
	a.log.Debug("emqx authn allowed", "client", truncate(q.ClientID), "principal", id.Principal)
	no := false
	resp := emqxResponse{Result: resultAllow, IsSuperuser: &no}
	if !id.ExpiresAt.IsZero() {
		resp.ExpireAt = id.ExpiresAt.Unix()
	}
	writeEMQX(w, resp)
}

// emqxAuthz decides one publish or subscribe.
func (a *Adapters) emqxAuthz(w http.ResponseWriter, r *http.Request) {
	q, err := readEMQX(r)
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	allowed, why, err := a.emqxDecide(ctx, q)
	if err != nil {
		a.log.Error("emqx authz", "client", truncate(q.ClientID), "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError) // EMQX: ignore
		return
	}
	res := resultDeny
	if allowed {
		res = resultAllow
	} else {
		a.log.Debug("emqx authz denied", "client", truncate(q.ClientID), "action", q.Action, "topic", truncate(q.Topic), "why", why)
	}
	writeEMQX(w, emqxResponse{Result: res})
}

// emqxDecide decides from the session the client's authentication left
// in the store, whichever replica it reached, checking on each call that
// the credential is neither revoked nor expired and that the thing is
// still enabled. An error is a failure to decide.
func (a *Adapters) emqxDecide(ctx context.Context, q *emqxRequest) (bool, string, error) {
	var b *policy.Bound
	s, err := a.session(ctx, brokerEMQX, q.ClientID, q.Username)
	if err != nil {
		return false, "", err
	}
	switch {
	case s != nil:
		if err := a.check(ctx, s); err != nil {
			if !errors.Is(err, authn.ErrNotAuthorized) {
				return false, "", err
			}
			return false, err.Error(), nil
		}
		bb, err := a.bind(ctx, s.id.Subject, s.id, s.clientID, s.clientID, s.sourceIP)
		if err != nil {
			return false, err.Error(), nil
		}
		b = bb
	case a.cfg.ResolveByThingName && q.ClientID != "" && q.ClientID == q.Username:
		bb, err := a.bind(ctx, registry.Subject{ThingName: q.Username}, nil, q.ClientID, q.ClientID, parsePeer(q.PeerHost))
		if err != nil {
			return false, err.Error(), nil
		}
		b = bb
	default:
		return false, errNoSession.Error(), nil
	}
	switch strings.ToLower(q.Action) {
	case "publish":
		return PublishAllowed(b, q.Topic, isTrue(q.Retain)), "policy", nil
	case "subscribe":
		return SubscribeAllowed(b, q.Topic), "policy", nil
	}
	return false, "unknown action " + truncate(q.Action), nil
}

func isTrue(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true") || v == "1"
	case float64:
		return v != 0
	}
	return false
}
