package authn_test

import (
	"log/slog"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// zitadel/oidc's op logs every routed endpoint to the default logger;
	// keep test and benchmark output readable.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}
