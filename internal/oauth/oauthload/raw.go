package oauthload

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// rawClient speaks just enough HTTP/1.1 over one keep-alive TCP connection
// to post a prepared token request and read the answer. It costs a
// fraction of net/http's client per request, so a load generator on one
// core can keep a server on another core busy: what is measured is then
// the server, not the client. One request is outstanding per connection
// (no pipelining), as with net/http.
type rawClient struct {
	addr    string
	request []byte
	conn    net.Conn
	br      *bufio.Reader
	body    []byte
}

// newRawRequest prepares the bytes of a client credentials POST to an
// http:// token URL.
func newRawRequest(tokenURL, clientID, clientSecret, body string) (addr string, req []byte, err error) {
	u, err := url.Parse(tokenURL)
	if err != nil {
		return "", nil, fmt.Errorf("oauthload: token URL: %w", err)
	}
	if u.Scheme != "http" {
		return "", nil, errors.New("oauthload: raw mode needs an http:// token URL")
	}
	addr = u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	cred := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(clientID) + ":" + url.QueryEscape(clientSecret)))
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gatehouse-oauthload\r\nAuthorization: Basic %s\r\n", u.RequestURI(), u.Host, cred)
	fmt.Fprintf(&b, "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	return addr, b.Bytes(), nil
}

// do sends the request once and returns the status and body of the answer,
// dialing first if there is no connection.
func (c *rawClient) do(ctx context.Context) (int, []byte, error) {
	if c.conn == nil {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return 0, nil, err
		}
		c.conn, c.br = conn, bufio.NewReaderSize(conn, 8<<10)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	_ = c.conn.SetDeadline(deadline)
	status, body, keep, err := c.roundTrip()
	if err != nil || !keep {
		c.conn.Close()
		c.conn = nil
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() && !time.Now().Before(deadline) {
		// The run ended mid-request; the connection deadline can fire a
		// moment before ctx reports it.
		return 0, nil, errRunOver
	}
	return status, body, err
}

// errRunOver is a request cut off by the end of the run.
var errRunOver = errors.New("oauthload: run over")

func (c *rawClient) roundTrip() (status int, body []byte, keep bool, err error) {
	if _, err := c.conn.Write(c.request); err != nil {
		return 0, nil, false, err
	}
	line, err := c.line()
	if err != nil {
		return 0, nil, false, err
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	if !strings.HasPrefix(proto, "HTTP/1.") {
		return 0, nil, false, fmt.Errorf("oauthload: bad status line %q", line)
	}
	if status, err = strconv.Atoi(code); err != nil {
		return 0, nil, false, fmt.Errorf("oauthload: bad status line %q", line)
	}
	length, chunked := -1, false
	keep = proto == "HTTP/1.1"
	for {
		h, err := c.line()
		if err != nil {
			return 0, nil, false, err
		}
		if h == "" {
			break
		}
		name, value, _ := strings.Cut(h, ":")
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "content-length":
			if length, err = strconv.Atoi(value); err != nil || length < 0 {
				return 0, nil, false, fmt.Errorf("oauthload: bad Content-Length %q", value)
			}
		case "transfer-encoding":
			chunked = strings.EqualFold(value, "chunked")
		case "connection":
			keep = keep && !strings.EqualFold(value, "close")
		}
	}
	c.body = c.body[:0]
	switch {
	case chunked:
		err = c.readChunked()
	case length >= 0:
		c.body = append(c.body, make([]byte, length)...)
		_, err = io.ReadFull(c.br, c.body)
	default:
		keep = false
		c.body, err = io.ReadAll(c.br)
	}
	return status, c.body, keep, err
}

func (c *rawClient) readChunked() error {
	for {
		line, err := c.line()
		if err != nil {
			return err
		}
		size, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("oauthload: bad chunk size %q", line)
		}
		if n == 0 {
			for { // trailers
				if l, err := c.line(); err != nil || l == "" {
					return err
				}
			}
		}
		start := len(c.body)
		c.body = append(c.body, make([]byte, n)...)
		if _, err := io.ReadFull(c.br, c.body[start:]); err != nil {
			return err
		}
		if l, err := c.line(); err != nil || l != "" {
			return fmt.Errorf("oauthload: chunk not followed by CRLF")
		}
	}
}

// line reads one CRLF-terminated line without it.
func (c *rawClient) line() (string, error) {
	l, err := c.br.ReadSlice('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(l), "\r\n"), nil
}

func (c *rawClient) close() {
	if c.conn != nil {
		c.conn.Close()
	}
}
