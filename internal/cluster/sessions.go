package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// sessionsBucket holds persistent MQTT sessions' subscriptions, one key
// per client id (base64url).
const sessionsBucket = "gatehouse_sessions"

// sessionsMaxAge bounds how long a session nobody updates stays in the
// bucket: one whose replica died with the client connected is never marked
// disconnected. Every connection and subscription change writes it again.
const sessionsMaxAge = 30 * 24 * time.Hour

// Session is what the cluster keeps of a persistent MQTT session (clean
// start false, or a session expiry interval): its subscriptions, so that
// the client resumes them on whichever replica it reconnects to. Messages
// queued for it and its in-flight messages are not kept: they stay in the
// memory of the replica that held the session.
type Session struct {
	// Replica is the replica that wrote it.
	Replica       string         `json:"replica"`
	Subscriptions []Subscription `json:"subscriptions,omitempty"`
	// Expiry is the session expiry interval in seconds, counted from
	// Disconnected (Unix seconds; 0 while the client is connected, or
	// when its replica ended with the client connected).
	Expiry       uint32 `json:"expiry"`
	Disconnected int64  `json:"disconnected,omitempty"`
}

// Subscription is one subscription of a Session, with its MQTT 5 options.
type Subscription struct {
	Filter            string `json:"filter"`
	QoS               byte   `json:"qos"`
	NoLocal           bool   `json:"noLocal,omitempty"`
	RetainAsPublished bool   `json:"retainAsPublished,omitempty"`
	RetainHandling    byte   `json:"retainHandling,omitempty"`
	Identifier        int    `json:"identifier,omitempty"`
}

// Expired reports whether the session's expiry interval has passed since
// its client disconnected.
func (s Session) Expired(now time.Time) bool {
	return s.Disconnected != 0 && now.Unix() >= s.Disconnected+int64(s.Expiry)
}

// ErrNotReady is returned while JetStream is not available yet (no
// majority of the embedded servers, or within a failover).
var ErrNotReady = errors.New("cluster: jetstream not ready")

// ErrSessionMoved is a session written since the revision given: another
// replica holds the client now.
var ErrSessionMoved = errors.New("cluster: session moved to another replica")

func (n *Node) sessionBucket() (jetstream.KeyValue, error) {
	st := n.js.Load()
	if st == nil {
		return nil, ErrNotReady
	}
	return st.sessions, nil
}

// bucketKey is a topic or client id as a bucket key: base64url, since they
// hold characters keys cannot.
func bucketKey(s string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// SaveSession stores clientID's session and returns its new revision. With
// rev 0 it replaces whatever is stored (this replica holds the session
// now); otherwise only while the stored revision is still rev, else
// ErrSessionMoved.
func (n *Node) SaveSession(ctx context.Context, clientID string, s Session, rev uint64) (uint64, error) {
	kv, err := n.sessionBucket()
	if err != nil {
		return 0, err
	}
	s.Replica = n.replica
	v, err := json.Marshal(s)
	if err != nil {
		return 0, fmt.Errorf("cluster: save session: %w", err)
	}
	if rev == 0 {
		rev, err = kv.Put(ctx, bucketKey(clientID), v)
	} else {
		rev, err = kv.Update(ctx, bucketKey(clientID), v, rev)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		return 0, ErrSessionMoved
	case err != nil:
		return 0, fmt.Errorf("cluster: save session: %w", err)
	}
	return rev, nil
}

// LoadSession returns clientID's session and its revision; ok is false if
// there is none, or it expired (and is then removed). While no server
// answers for the bucket (an election after a server was lost) it asks
// again until ctx ends.
func (n *Node) LoadSession(ctx context.Context, clientID string) (s Session, rev uint64, ok bool, err error) {
	kv, err := n.sessionBucket()
	if err != nil {
		return Session{}, 0, false, err
	}
	var e jetstream.KeyValueEntry
	for {
		e, err = kv.Get(ctx, bucketKey(clientID))
		if !errors.Is(err, nats.ErrNoResponders) || ctx.Err() != nil {
			break
		}
		// No server answers for the bucket yet (a leader being elected
		// after a server was lost): ask again until ctx ends.
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Session{}, 0, false, nil
	}
	if err != nil {
		return Session{}, 0, false, fmt.Errorf("cluster: load session: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return Session{}, 0, false, fmt.Errorf("cluster: load session: %w", err)
	}
	if s.Expired(n.cfg.Now()) {
		_ = n.DeleteSession(ctx, clientID, e.Revision())
		return Session{}, 0, false, nil
	}
	return s, e.Revision(), true, nil
}

// DeleteSession removes clientID's session while its revision is still rev
// (a replica that took the client over since keeps it).
func (n *Node) DeleteSession(ctx context.Context, clientID string, rev uint64) error {
	kv, err := n.sessionBucket()
	if err != nil {
		return err
	}
	err = kv.Purge(ctx, bucketKey(clientID), jetstream.LastRevision(rev))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return ErrSessionMoved
	}
	if err != nil {
		return fmt.Errorf("cluster: delete session: %w", err)
	}
	return nil
}
