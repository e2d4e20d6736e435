package app

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

// Ready is what `gatehouse serve --ready-file F` writes to F once every
// listener is bound, before the banner: the addresses (host:port, "" for a
// listener that is off) and, on the first start only, the bootstrap
// administrator's credentials. It is for scripts and tests that start a
// server on ephemeral ports; people read the banner.
type Ready struct {
	HTTP      string `json:"http"`
	HTTPS     string `json:"https,omitempty"`
	MQTT      string `json:"mqtt,omitempty"`
	MQTTS     string `json:"mqtts,omitempty"`
	WS        string `json:"ws,omitempty"`
	WSS       string `json:"wss,omitempty"`
	Anonymous string `json:"anonymous,omitempty"`
	Issuer    string `json:"issuer"`
	// AdminUser, AdminPassword and AdminToken are set on the first start,
	// when the banner shows them too; the file is created 0600.
	AdminUser     string `json:"adminUser,omitempty"`
	AdminPassword string `json:"adminPassword,omitempty"`
	AdminToken    string `json:"adminToken,omitempty"`
}

// writeReady writes the ready file atomically (a reader never sees half of
// it): a temporary file beside it, renamed into place.
func (a *App) writeReady(path string, boot *registry.Bootstrap) error {
	r := Ready{HTTP: a.HTTPAddr(), MQTT: a.Broker.Addr("mqtt"), MQTTS: a.Broker.Addr("mqtts"), WS: a.Broker.Addr("ws"),
		WSS: a.Broker.Addr("wss"), Anonymous: a.Broker.Addr("anonymous"), Issuer: a.issuer}
	if a.httpsLn != nil {
		r.HTTPS = a.httpsLn.Addr().String()
	}
	if boot != nil {
		r.AdminUser, r.AdminPassword, r.AdminToken = boot.Username, boot.Password, boot.Token
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".ready-*")
	if err != nil {
		return fmt.Errorf("app: ready file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("app: ready file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("app: ready file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("app: ready file: %w", err)
	}
	return nil
}
