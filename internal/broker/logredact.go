package broker

import (
	"context"
	"log/slog"
	"reflect"
	"strings"

	"github.com/mochi-mqtt/server/v2/packets"
)

// mochiPackage is the import path prefix of mochi's types.
const mochiPackage = "github.com/mochi-mqtt/server/v2"

// redactedKey reports whether key is one under which mochi logs whole
// packets or their parts ("pk", "packet", "will"; "m" in its debug hook,
// "data" in its storage hooks) or a secret.
func redactedKey(key string) bool {
	switch strings.ToLower(key) {
	case "pk", "packet", "will", "m", "data", "payload", "password":
		return true
	}
	return false
}

// redactHandler is the slog.Handler mochi logs through. mochi logs whole
// packets on protocol errors and rejected publishes (a second CONNECT on a
// connection logs its password, an access token, at WARN); this handler
// replaces every attribute that holds a packet, a will, one of mochi's
// structures or raw bytes by a description without content, whatever the
// level, so no password or payload reaches the log.
type redactHandler struct{ next slog.Handler }

func newRedactHandler(next slog.Handler) slog.Handler { return redactHandler{next: next} }

func (h redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h redactHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h redactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = redactAttr(a)
	}
	return redactHandler{next: h.next.WithAttrs(clean)}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{next: h.next.WithGroup(name)}
}

// redactAttr returns a with any packet content replaced.
func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		group := v.Group()
		clean := make([]any, len(group))
		for i, g := range group {
			clean[i] = redactAttr(g)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindString, slog.KindInt64, slog.KindUint64, slog.KindFloat64, slog.KindBool, slog.KindDuration, slog.KindTime:
		if redactedKey(a.Key) {
			return slog.String(a.Key, "[redacted]")
		}
		return slog.Attr{Key: a.Key, Value: v}
	}
	x := v.Any()
	if err, ok := x.(error); ok && !redactedKey(a.Key) {
		// mochi's errors are reason codes and fixed messages.
		return slog.String(a.Key, err.Error())
	}
	switch p := x.(type) {
	case packets.Packet:
		return slog.String(a.Key, packetSummary(p))
	case *packets.Packet:
		if p != nil {
			return slog.String(a.Key, packetSummary(*p))
		}
	}
	if redactedKey(a.Key) || fromMochiOrBytes(x) {
		return slog.String(a.Key, "[redacted]")
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// packetSummary names a packet's type and nothing of its content.
func packetSummary(pk packets.Packet) string {
	name, ok := packets.PacketNames[pk.FixedHeader.Type]
	if !ok {
		name = "unknown"
	}
	return name + " packet (content not logged)"
}

// fromMochiOrBytes reports whether x is (a pointer to, a slice or map of)
// one of mochi's types or raw bytes, any of which may hold packet content.
func fromMochiOrBytes(x any) bool {
	t := reflect.TypeOf(x)
	for t != nil {
		if strings.HasPrefix(t.PkgPath(), mochiPackage) {
			return true
		}
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
				return true
			}
			t = t.Elem()
		default:
			return false
		}
	}
	return false
}
