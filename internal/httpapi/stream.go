package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// streamBatch bounds the events read from the log per round.
const streamBatch = 500

// streamEvents is GET /api/v1/events/stream: Server-Sent Events of the
// event log, filtered by ?type= and ?subject= prefixes. Without
// Last-Event-ID (header, or ?lastEventId=) it starts with the next event;
// with it, it first replays what came after that id. An idle stream sends a
// comment every heartbeat. It ends when the client goes away or the server
// shuts down, or at a heartbeat once its credentials are no longer valid.
func (a *API) streamEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	typ, subject := q.Get("type"), q.Get("subject")
	last, err := lastEventID(r)
	if err != nil {
		return err
	}
	if last < 0 {
		if last, err = a.events.LatestID(r.Context()); err != nil {
			return err
		}
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := fmt.Fprint(w, "retry: 3000\n\n"); err != nil {
		return nil
	}
	if err := rc.Flush(); err != nil {
		return nil // the client went away; the status is sent already
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(a.streams, cancel)
	defer stop()

	heartbeat := time.Now().Add(a.heartbeat)
	for {
		evs, err := a.events.Wait(ctx, store.EventFilter{AfterID: last, Limit: streamBatch}, max(time.Until(heartbeat), time.Millisecond))
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				a.log.WarnContext(r.Context(), "event stream ended", "err", err)
			}
			return nil
		}
		var b strings.Builder
		for _, ev := range evs {
			last = ev.ID
			if !strings.HasPrefix(ev.Type, typ) || !strings.HasPrefix(ev.Subject, subject) {
				continue
			}
			data, err := json.Marshal(ev)
			if err != nil {
				return nil
			}
			fmt.Fprintf(&b, "event: gatehouse\nid: %d\ndata: %s\n\n", ev.ID, data)
		}
		if b.Len() == 0 && !time.Now().Before(heartbeat) {
			// A stream lives no longer than its credentials: a logout,
			// an expired session or a revoked token ends it here.
			if _, err := a.authenticate(r, read); err != nil {
				return nil
			}
			b.WriteString(": heartbeat\n\n")
		}
		if b.Len() == 0 {
			continue
		}
		if _, err := fmt.Fprint(w, b.String()); err != nil {
			return nil
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
		heartbeat = time.Now().Add(a.heartbeat)
	}
}

// lastEventID reads Last-Event-ID (or ?lastEventId=); -1 when absent.
func lastEventID(r *http.Request) (int64, error) {
	s := r.Header.Get("Last-Event-ID")
	if s == "" {
		s = r.URL.Query().Get("lastEventId")
	}
	if s == "" {
		return -1, nil
	}
	id, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || id < 0 {
		return 0, errorf(http.StatusBadRequest, "Last-Event-ID %q: want an event id", s)
	}
	return id, nil
}

// CloseStreams ends the event streams being served, so a graceful shutdown
// does not wait for them.
func (a *API) CloseStreams() { a.stop() }
