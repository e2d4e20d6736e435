package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// client talks to a running server's admin API.
type client struct {
	base  string
	token string
	http  *http.Client
	out   io.Writer
}

// clientFlags registers --server and --token on fs.
func clientFlags(fs *flag.FlagSet) func(env *Env) (*client, error) {
	server := fs.String("server", "", "server URL (env GATEHOUSE_SERVER, default http://127.0.0.1:8080)")
	token := fs.String("token", "", "admin API token (env GATEHOUSE_TOKEN)")
	return func(env *Env) (*client, error) {
		c := &client{base: *server, token: *token, http: &http.Client{Timeout: 90 * time.Second}, out: env.Stdout}
		if c.base == "" {
			c.base = env.Getenv("GATEHOUSE_SERVER")
		}
		if c.base == "" {
			c.base = "http://127.0.0.1:8080"
		}
		c.base = strings.TrimRight(c.base, "/")
		if c.token == "" {
			c.token = env.Getenv("GATEHOUSE_TOKEN")
		}
		if c.token == "" {
			return nil, usagef("no API token: set GATEHOUSE_TOKEN or pass --token")
		}
		return c, nil
	}
}

// apiError is a problem+json answer.
type apiError struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %s", e.Status, e.Title, e.Detail)
	for _, p := range e.Errors {
		fmt.Fprintf(&b, "\n  %s: %s", p.Field, p.Message)
	}
	return b.String()
}

// do sends a request and decodes a JSON answer into out (if not nil).
func (c *client) do(ctx context.Context, method, path string, header http.Header, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		e := &apiError{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
		if json.Unmarshal(data, e) != nil || e.Detail == "" {
			e.Detail = strings.TrimSpace(string(data))
		}
		return e
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// print sends a request and prints the JSON answer indented.
func (c *client) print(ctx context.Context, method, path string, header http.Header, body any) error {
	var out json.RawMessage
	if err := c.do(ctx, method, path, header, body, &out); err != nil {
		return err
	}
	if len(out) == 0 {
		return nil
	}
	var b bytes.Buffer
	if err := json.Indent(&b, out, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := c.out.Write(b.Bytes())
	return err
}

func escape(s string) string { return url.PathEscape(s) }

// ifMatchHeader returns an If-Match header for a version, or nil.
func ifMatchHeader(version int64) http.Header {
	if version == 0 {
		return nil
	}
	return http.Header{"If-Match": {fmt.Sprintf(`"%d"`, version)}}
}
