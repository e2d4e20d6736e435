package thing

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// HTTPSOptions configure PublishHTTPS.
type HTTPSOptions struct {
	QoS    byte
	Retain bool
	// Authorizer, when set, authenticates with x-amz-customauthorizer-*
	// headers and a signature of the token instead of a bearer token.
	Authorizer *CustomAuthorizer
}

// PublishHTTPS publishes one message over HTTPS
// (POST /topics/{topic}?qos=&retain=) with the access token as bearer or
// through a custom authorizer. A policy Deny is an *HTTPError with
// StatusCode 403.
func (t *Thing) PublishHTTPS(ctx context.Context, topic string, payload []byte, opts HTTPSOptions) error {
	tok, err := t.Token(ctx)
	if err != nil {
		return err
	}
	q := url.Values{"qos": {strconv.Itoa(int(opts.QoS))}}
	if opts.Retain {
		q.Set("retain", "true")
	}
	segs := strings.Split(topic, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	u := t.server + "/topics/" + strings.Join(segs, "/") + "?" + q.Encode()
	err = t.send(ctx, "publish", func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(payload))
		if err != nil {
			return nil, err
		}
		if a := opts.Authorizer; a != nil {
			sig, err := a.Sign(tok)
			if err != nil {
				return nil, err
			}
			req.Header.Set("X-Amz-CustomAuthorizer-Name", a.Name)
			req.Header.Set("X-Amz-CustomAuthorizer-Signature", sig)
			req.Header.Set(a.tokenKey(), tok)
		} else {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		return req, nil
	}, nil)
	if err != nil {
		return fmt.Errorf("thing: publish to %s: %w", topic, err)
	}
	return nil
}
