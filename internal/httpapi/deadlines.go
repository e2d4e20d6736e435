package httpapi

import (
	"errors"
	"io"
	"net/http"
	"time"
)

// Deadlines bounds each request on its connection: reading its body may
// take read from the end of its headers (a body trickling in a byte at a
// time is cut off), writing its response write, except for long-lived
// responses (LongLived), whose write deadline is cleared. 0 disables
// either. The server's own ReadTimeout and WriteTimeout cannot do this:
// they would end the event stream and long polls too.
func Deadlines(read, write time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		// Set or cleared on every request: a deadline left from an
		// earlier request on a kept-alive connection must not cut this
		// one short. Errors mean the writer cannot take deadlines.
		switch {
		case LongLived(r):
			_ = rc.SetWriteDeadline(time.Time{})
		case write > 0:
			_ = rc.SetWriteDeadline(time.Now().Add(write))
		}
		if read > 0 && r.Body != nil && r.Body != http.NoBody {
			if rc.SetReadDeadline(time.Now().Add(read)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// LongLived reports whether r asks for a response that stays open: the
// event stream, or an event long poll (?wait=).
func LongLived(r *http.Request) bool {
	switch r.URL.Path {
	case "/api/v1/events/stream":
		return true
	case "/api/v1/events":
		return r.URL.Query().Has("wait")
	}
	return false
}

// deadlineBody lifts the read deadline once the body has been read or
// closed, so the server's wait for the client to go away (which cancels
// the request's context) does not fire at the deadline.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.lift()
	}
	return n, err
}

func (b *deadlineBody) Close() error {
	b.lift()
	return b.ReadCloser.Close()
}

func (b *deadlineBody) lift() {
	if !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
}
