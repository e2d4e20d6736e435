package console

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/httpapi"
)

// SessionTokens mints a person's short-lived access token (the OAuth
// server's IssueSessionToken): the MQTT test client logs in with it.
type SessionTokens interface {
	IssueSessionToken(ctx context.Context, username string, ttl time.Duration) (string, time.Time, error)
}

// mqttTokenTTL is how long a test client token lasts: the page asks for a
// new one when it reconnects.
const mqttTokenTTL = 10 * time.Minute

// mqttToken is what POST /console/api/mqtt-token answers.
type mqttToken struct {
	// URL is the broker's MQTT-over-WebSocket endpoint, on the host the
	// browser reached the console by.
	URL       string    `json:"url"`
	Username  string    `json:"username"`
	ClientID  string    `json:"clientId"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// wsURL is the MQTT-over-WebSocket origin ("ws://host:port") a browser
// that reached the console at r can connect to, or "" when there is no
// WebSocket listener or r's host is not a plain host name. A page served
// over HTTPS gets the wss listener (a browser refuses ws:// there).
func (c *Console) wsURL(r *http.Request) string {
	addr, scheme := c.ws, "ws"
	if (r.TLS != nil || c.secure || addr == "") && c.wss != "" {
		addr, scheme = c.wss, "wss"
	}
	if addr == "" {
		return ""
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if !plainHost(host) {
		return ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host + ":" + port
}

// plainHost reports whether h is a host name or IP address made only of
// the characters those may hold, fit to be written into a header.
func plainHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == ':':
		default:
			return false
		}
	}
	return true
}

// contentSecurityPolicy is ContentSecurityPolicy with the MQTT WebSocket
// endpoint of r added to connect-src, so that the test client may reach
// it and nothing else.
func (c *Console) contentSecurityPolicy(r *http.Request) string {
	u := c.wsURL(r)
	if u == "" {
		return ContentSecurityPolicy
	}
	return strings.Replace(ContentSecurityPolicy, "connect-src 'self'", "connect-src 'self' "+u, 1)
}

// mintMQTTToken serves POST /console/api/mqtt-token: a token for the
// signed-in person and a client id of theirs (<user>~console-<random>),
// to log in to the broker over WebSocket as themselves, under their own
// policies. Like every change, it needs the session's CSRF token.
func (c *Console) mintMQTTToken(w http.ResponseWriter, r *http.Request) error {
	username, err := c.changer(r)
	if err != nil {
		return err
	}
	u := c.wsURL(r)
	if c.tokens == nil || u == "" {
		return &httpapi.Error{Status: http.StatusNotFound, Msg: "this server has no MQTT WebSocket listener (mqtt.ws) for the test client"}
	}
	tok, exp, err := c.tokens.IssueSessionToken(r.Context(), username, mqttTokenTTL)
	if err != nil {
		return err
	}
	suffix, err := c.random()
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, mqttToken{URL: u + "/mqtt", Username: username, ClientID: username + "~console-" + suffix[:8], Token: tok, ExpiresAt: exp})
}
