package thing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// DeviceCode is what the person who approves the device needs: open
// VerificationURIComplete, or VerificationURI and type UserCode.
type DeviceCode struct {
	UserCode                string
	VerificationURI         string
	VerificationURIComplete string
	ExpiresIn               time.Duration
	// Interval is the polling interval the server asked for.
	Interval time.Duration
}

// ErrAccessDenied is returned by DeviceFlow when the person refused.
var ErrAccessDenied = errors.New("thing: the device authorization was denied")

// ErrExpired is returned by DeviceFlow when the code expired unapproved.
var ErrExpired = errors.New("thing: the device code expired")

// DeviceFlow runs the OAuth 2.0 device authorization grant (RFC 8628): it
// asks for a code (authenticating as the thing), hands it to show, then
// polls the token endpoint honouring the interval and slow_down until the
// person approves, denies, or the code expires. The tokens (with a refresh
// token) are cached and stored; Token refreshes them from then on.
func (t *Thing) DeviceFlow(ctx context.Context, show func(context.Context, DeviceCode) error) (*Token, error) {
	m := t.discover(ctx)
	form := url.Values{}
	if len(t.cfg.Scopes) > 0 {
		form.Set("scope", strings.Join(t.cfg.Scopes, " "))
	}
	var da struct {
		DeviceCode              string `json:"device_code"`
		UserCode                string `json:"user_code"`
		VerificationURI         string `json:"verification_uri"`
		VerificationURIComplete string `json:"verification_uri_complete"`
		ExpiresIn               int64  `json:"expires_in"`
		Interval                int64  `json:"interval"`
	}
	if err := t.postClientForm(ctx, "device code", m.DeviceCode, form, &da); err != nil {
		return nil, err
	}
	if da.DeviceCode == "" || da.UserCode == "" {
		return nil, errors.New("thing: device authorization answer lacks device_code or user_code")
	}
	interval := time.Duration(da.Interval) * time.Second
	if interval <= 0 {
		interval = 5 * time.Second
	}
	dc := DeviceCode{UserCode: da.UserCode, VerificationURI: da.VerificationURI, VerificationURIComplete: da.VerificationURIComplete,
		ExpiresIn: time.Duration(da.ExpiresIn) * time.Second, Interval: interval}
	if show != nil {
		if err := show(ctx, dc); err != nil {
			return nil, fmt.Errorf("thing: showing the user code: %w", err)
		}
	}
	if dc.ExpiresIn > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, dc.ExpiresIn, ErrExpired)
		defer cancel()
	}
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("thing: device flow: %w", context.Cause(ctx))
		case <-timer.C:
		}
		tok, err := t.postForm(ctx, m.TokenEndpoint, url.Values{
			"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
			"device_code": {da.DeviceCode},
		})
		var he *HTTPError
		switch {
		case err == nil:
			if err := t.store(tok); err != nil {
				return nil, err
			}
			t.log.Info("thing: device authorization approved", "thing", t.Name(), "scope", tok.Scope)
			return tok, nil
		case errors.As(err, &he) && he.Code == "authorization_pending":
		case errors.As(err, &he) && he.Code == "slow_down":
			interval += 5 * time.Second
			t.log.Debug("thing: device flow: slow_down", "interval", interval)
		case errors.As(err, &he) && he.Code == "access_denied":
			return nil, ErrAccessDenied
		case errors.As(err, &he) && he.Code == "expired_token":
			return nil, ErrExpired
		default:
			return nil, err
		}
		timer.Reset(interval)
	}
}
