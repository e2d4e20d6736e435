package broker

import (
	"context"
	"log/slog"
)

// packetAttrs are the attributes mochi attaches whole packets to in its log
// records (an unprocessable packet, one a hook rejected): they carry
// payloads, and a CONNECT carries the password.
var packetAttrs = map[string]bool{"pk": true, "packet": true}

// withoutPackets is the handler mochi logs through: it drops packetAttrs
// and passes everything else on.
type withoutPackets struct{ slog.Handler }

func (h withoutPackets) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if !packetAttrs[a.Key] {
			out.AddAttrs(a)
		}
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h withoutPackets) WithAttrs(attrs []slog.Attr) slog.Handler {
	var kept []slog.Attr
	for _, a := range attrs {
		if !packetAttrs[a.Key] {
			kept = append(kept, a)
		}
	}
	return withoutPackets{h.Handler.WithAttrs(kept)}
}

func (h withoutPackets) WithGroup(name string) slog.Handler {
	return withoutPackets{h.Handler.WithGroup(name)}
}
