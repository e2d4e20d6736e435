package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-iot/gatehouse/internal/jwks"
)

// AWS IoT limits on the authorizer's answer.
const (
	minSeconds       = 300
	maxSeconds       = 86400
	maxDocuments     = 10
	maxDocumentChars = 2048
	maxPrincipalID   = 128
	maxTokenBytes    = 8 << 10
	policyVersion    = "2012-10-17"
)

// allowedAlgorithms are the asymmetric algorithms Gatehouse signs with.
func allowedAlgorithms() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA}
}

// authorizer answers AWS IoT custom-authorizer invocations.
type authorizer struct {
	cfg  config
	log  *slog.Logger
	now  func() time.Time
	keys *jwks.Set
}

func newAuthorizer(c config) (*authorizer, error) {
	if c.Policies == nil {
		return nil, errors.New("no policy map")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if c.JWKSTTL <= 0 {
		c.JWKSTTL = 10 * time.Minute
	}
	if c.RefreshAfter == 0 {
		c.RefreshAfter = minSeconds
	}
	if len(c.Audience) == 0 {
		c.Audience = []string{c.Issuer}
	}
	return &authorizer{cfg: c, log: c.Logger, now: c.Now,
		// A Lambda instance lives across invocations: while Gatehouse is
		// unreachable it keeps the keys it has and backs off, so each
		// invocation does not pay a fetch timeout.
		keys: jwks.New(c.JWKSURL, jwks.Options{TTL: c.JWKSTTL, MinRefetch: time.Minute, Client: c.HTTPClient, Now: c.Now})}, nil
}

// claims are the access token claims the Lambda uses.
type claims struct {
	Issuer    string          `json:"iss"`
	Subject   string          `json:"sub"`
	Audience  json.RawMessage `json:"aud"`
	Expiry    int64           `json:"exp"`
	IssuedAt  int64           `json:"iat"`
	NotBefore int64           `json:"nbf"`
	ClientID  string          `json:"client_id"`
	Scope     string          `json:"scope"`
	ThingName string          `json:"thing_name"`
	Cnf       json.RawMessage `json:"cnf"`
}

func (c *claims) audiences() []string {
	var one string
	if json.Unmarshal(c.Audience, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(c.Audience, &many)
	return many
}

var errDenied = errors.New("denied")

// Handle is the Lambda handler. Refusals are answers
// (isAuthenticated=false), not errors: an error makes AWS IoT refuse the
// connection too, but is logged as a Lambda failure.
func (a *authorizer) Handle(ctx context.Context, req events.IoTCoreCustomAuthorizerRequest) (events.IoTCoreCustomAuthorizerResponse, error) {
	resp, err := a.authorize(ctx, req)
	if err != nil {
		conn := ""
		if req.ConnectionMetadata != nil {
			conn = req.ConnectionMetadata.ID
		}
		a.log.Info("custom authorizer denied", "connection", truncate(conn), "protocols", req.Protocols, "why", err)
		return events.IoTCoreCustomAuthorizerResponse{IsAuthenticated: false, PrincipalID: "denied", PolicyDocuments: []*events.IAMPolicyDocument{}}, nil
	}
	return resp, nil
}

// tokenOf finds the token: the authorizer's token key (AWS puts it in
// "token"), else the MQTT password, else an HTTP bearer header.
func tokenOf(req events.IoTCoreCustomAuthorizerRequest) string {
	if req.Token != "" {
		return req.Token
	}
	if pd := req.ProtocolData; pd != nil {
		if pd.MQTT != nil && len(pd.MQTT.Password) > 0 {
			return string(pd.MQTT.Password)
		}
		if pd.HTTP != nil {
			for k, v := range pd.HTTP.Headers {
				if strings.EqualFold(k, "authorization") {
					if scheme, tok, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "bearer") {
						return strings.TrimSpace(tok)
					}
				}
			}
		}
	}
	return ""
}

func (a *authorizer) authorize(ctx context.Context, req events.IoTCoreCustomAuthorizerRequest) (events.IoTCoreCustomAuthorizerResponse, error) {
	var none events.IoTCoreCustomAuthorizerResponse
	raw := tokenOf(req)
	if raw == "" {
		return none, fmt.Errorf("%w: no token", errDenied)
	}
	c, err := a.verify(ctx, raw)
	if err != nil {
		return none, err
	}
	name := c.ThingName
	if name == "" {
		name = c.Subject
	}
	if req.ProtocolData != nil && req.ProtocolData.MQTT != nil {
		// As for Gatehouse's own broker, an MQTT username, when given,
		// names the token's thing (or subject).
		u, _, _ := strings.Cut(req.ProtocolData.MQTT.Username, "?")
		if u != "" && u != name {
			return none, fmt.Errorf("%w: MQTT username is not the token's thing or subject", errDenied)
		}
	}
	docs, err := a.documents(c)
	if err != nil {
		return none, err
	}
	// Whole seconds left, rounded down: the connection never outlives the
	// token.
	left := int64(time.Unix(c.Expiry, 0).Sub(a.now()) / time.Second)
	disconnect := clamp(left, minSeconds, maxSeconds)
	refresh := min(clamp(int64(a.cfg.RefreshAfter), minSeconds, maxSeconds), disconnect)
	return events.IoTCoreCustomAuthorizerResponse{
		IsAuthenticated: true, PrincipalID: principalID(name),
		DisconnectAfterInSeconds: uint32(disconnect), RefreshAfterInSeconds: uint32(refresh),
		PolicyDocuments: docs,
	}, nil
}

func clamp(v, lo, hi int64) int64 { return max(lo, min(v, hi)) }

// verify checks the token's signature, type, issuer, audience and times.
func (a *authorizer) verify(ctx context.Context, raw string) (*claims, error) {
	if len(raw) > maxTokenBytes {
		return nil, fmt.Errorf("%w: token longer than %d bytes", errDenied, maxTokenBytes)
	}
	jws, err := jose.ParseSignedCompact(raw, allowedAlgorithms())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDenied, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: want one signature", errDenied)
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, fmt.Errorf("%w: typ %q is not at+jwt", errDenied, truncate(typ))
	}
	key, err := a.keys.Key(ctx, h.KeyID)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDenied, err)
	}
	if key.Algorithm != "" && key.Algorithm != h.Algorithm {
		return nil, fmt.Errorf("%w: algorithm %s does not match the key's %s", errDenied, h.Algorithm, key.Algorithm)
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDenied, err)
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", errDenied, err)
	}
	now := a.now().Unix()
	const skew = 60
	switch {
	case c.Issuer != a.cfg.Issuer:
		return nil, fmt.Errorf("%w: issuer %q", errDenied, truncate(c.Issuer))
	case !slices.ContainsFunc(c.audiences(), func(s string) bool { return slices.Contains(a.cfg.Audience, s) }):
		return nil, fmt.Errorf("%w: audience not accepted", errDenied)
	case c.Expiry == 0 || now >= c.Expiry:
		return nil, fmt.Errorf("%w: expired", errDenied)
	case c.NotBefore > now+skew || c.IssuedAt > now+skew:
		return nil, fmt.Errorf("%w: not yet valid", errDenied)
	case len(c.Cnf) > 0 && string(c.Cnf) != "null":
		return nil, fmt.Errorf("%w: certificate-bound token (RFC 8705) cannot be checked here", errDenied)
	case c.ThingName == "" && c.Subject == "":
		return nil, fmt.Errorf("%w: token has neither thing_name nor sub", errDenied)
	}
	return &c, nil
}

// principalID makes an AWS principal id ([a-zA-Z0-9]{1,128}) of name.
func principalID(name string) string {
	clean := strings.Map(func(r rune) rune {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return r
		}
		return -1
	}, name)
	if clean == name && clean != "" && len(clean) <= maxPrincipalID {
		return clean
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:8])
	if len(clean) > maxPrincipalID-len(h) {
		clean = clean[:maxPrincipalID-len(h)]
	}
	return clean + h
}

// safeValue tells whether a token value may go into a policy resource: no
// wildcards, quotes or variable syntax.
func safeValue(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, r := range s {
		if !(r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_.:@-", r))) {
			return false
		}
	}
	return true
}

// documents gathers the statements of the default and the token's scopes,
// fills in Gatehouse variables and packs them into policy documents.
func (a *authorizer) documents(c *claims) ([]*events.IAMPolicyDocument, error) {
	vars := map[string]string{"${gatehouse:ThingName}": c.ThingName, "${gatehouse:Subject}": c.Subject, "${gatehouse:ClientId}": c.ClientID}
	for k, v := range vars {
		if v != "" && !safeValue(v) {
			return nil, fmt.Errorf("%w: %s has characters not allowed in a policy", errDenied, k)
		}
	}
	var sts []events.IAMPolicyStatement
	add := func(in []events.IAMPolicyStatement) {
		for _, st := range in {
			if st, ok := substitute(st, vars); ok {
				sts = append(sts, st)
			}
		}
	}
	add(a.cfg.Policies.Default)
	seen := map[string]bool{}
	for _, sc := range strings.Fields(c.Scope) {
		if !seen[sc] {
			seen[sc] = true
			add(a.cfg.Policies.Scopes[sc])
		}
	}
	if len(sts) == 0 {
		return nil, fmt.Errorf("%w: no policy statements for the token's scopes", errDenied)
	}
	return pack(sts)
}

// substitute fills in variables; ok is false for an Allow statement that
// needs a missing value.
func substitute(st events.IAMPolicyStatement, vars map[string]string) (events.IAMPolicyStatement, bool) {
	out := events.IAMPolicyStatement{Effect: st.Effect, Action: slices.Clone(st.Action)}
	for _, r := range st.Resource {
		for k, v := range vars {
			if !strings.Contains(r, k) {
				continue
			}
			if v == "" {
				if st.Effect == "Allow" {
					return out, false
				}
				v = "*"
			}
			r = strings.ReplaceAll(r, k, v)
		}
		out.Resource = append(out.Resource, r)
	}
	return out, true
}

// pack puts statements into as few documents as fit AWS's limits.
func pack(sts []events.IAMPolicyStatement) ([]*events.IAMPolicyDocument, error) {
	var docs []*events.IAMPolicyDocument
	size := func(d *events.IAMPolicyDocument) int {
		b, _ := json.Marshal(d)
		return len(b)
	}
	cur := &events.IAMPolicyDocument{Version: policyVersion}
	for _, st := range sts {
		cur.Statement = append(cur.Statement, st)
		if size(cur) <= maxDocumentChars {
			continue
		}
		cur.Statement = cur.Statement[:len(cur.Statement)-1]
		if len(cur.Statement) == 0 {
			return nil, fmt.Errorf("%w: a statement does not fit in a policy document", errDenied)
		}
		docs = append(docs, cur)
		cur = &events.IAMPolicyDocument{Version: policyVersion, Statement: []events.IAMPolicyStatement{st}}
		if size(cur) > maxDocumentChars {
			return nil, fmt.Errorf("%w: a statement does not fit in a policy document", errDenied)
		}
	}
	docs = append(docs, cur)
	if len(docs) > maxDocuments {
		return nil, fmt.Errorf("%w: policies need %d documents, more than %d", errDenied, len(docs), maxDocuments)
	}
	return docs, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
