package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// config is the Lambda's configuration.
type config struct {
	JWKSURL      string
	Issuer       string
	Audience     []string
	Policies     *policyMap
	JWKSTTL      time.Duration
	RefreshAfter uint32
	HTTPClient   *http.Client
	Logger       *slog.Logger
	Now          func() time.Time
}

// policyMap maps scopes to policy statements.
type policyMap struct {
	Default []events.IAMPolicyStatement            `json:"default"`
	Scopes  map[string][]events.IAMPolicyStatement `json:"scopes"`
}

func parsePolicyMap(data []byte) (*policyMap, error) {
	var m policyMap
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("policy map: %w", err)
	}
	check := func(where string, sts []events.IAMPolicyStatement) error {
		for i, st := range sts {
			if st.Effect != "Allow" && st.Effect != "Deny" {
				return fmt.Errorf("policy map: %s statement %d: Effect must be Allow or Deny", where, i)
			}
			if len(st.Action) == 0 || len(st.Resource) == 0 {
				return fmt.Errorf("policy map: %s statement %d: needs Action and Resource", where, i)
			}
			doc, _ := json.Marshal(events.IAMPolicyDocument{Version: policyVersion, Statement: []events.IAMPolicyStatement{st}})
			if len(doc) > maxDocumentChars-256 {
				return fmt.Errorf("policy map: %s statement %d: too long for a %d-character policy document", where, i, maxDocumentChars)
			}
		}
		return nil
	}
	if err := check("default", m.Default); err != nil {
		return nil, err
	}
	for scope, sts := range m.Scopes {
		if err := check("scope "+strconv.Quote(scope), sts); err != nil {
			return nil, err
		}
	}
	if len(m.Default) == 0 && len(m.Scopes) == 0 {
		return nil, errors.New("policy map: no statements")
	}
	return &m, nil
}

// configFromEnv reads the environment (see the package documentation).
func configFromEnv(getenv func(string) string, readFile func(string) ([]byte, error)) (config, error) {
	c := config{JWKSURL: getenv("GATEHOUSE_JWKS_URL"), Issuer: getenv("GATEHOUSE_ISSUER"), JWKSTTL: 10 * time.Minute, RefreshAfter: 300}
	if c.JWKSURL == "" || c.Issuer == "" {
		return c, errors.New("GATEHOUSE_JWKS_URL and GATEHOUSE_ISSUER are required")
	}
	for a := range strings.SplitSeq(getenv("GATEHOUSE_AUDIENCE"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.Audience = append(c.Audience, a)
		}
	}
	raw := []byte(getenv("GATEHOUSE_POLICY_MAP"))
	if p := getenv("GATEHOUSE_POLICY_MAP_FILE"); len(raw) == 0 && p != "" {
		b, err := readFile(p)
		if err != nil {
			return c, fmt.Errorf("GATEHOUSE_POLICY_MAP_FILE: %w", err)
		}
		raw = b
	}
	if len(raw) == 0 {
		return c, errors.New("GATEHOUSE_POLICY_MAP or GATEHOUSE_POLICY_MAP_FILE is required")
	}
	m, err := parsePolicyMap(raw)
	if err != nil {
		return c, err
	}
	c.Policies = m
	if s := getenv("GATEHOUSE_JWKS_TTL"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("GATEHOUSE_JWKS_TTL: %q is not a positive duration", s)
		}
		c.JWKSTTL = d
	}
	if s := getenv("GATEHOUSE_REFRESH_AFTER"); s != "" {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n < minSeconds || n > maxSeconds {
			return c, fmt.Errorf("GATEHOUSE_REFRESH_AFTER: %q is not between %d and %d", s, minSeconds, maxSeconds)
		}
		c.RefreshAfter = uint32(n)
	}
	return c, nil
}
