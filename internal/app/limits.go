package app

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-iot/gatehouse/internal/config"
	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
)

// limits are the configured abuse limiters, all counting their refusals
// in one gatehouse_limit_rejections_total.
type limits struct {
	rejections                                                                   *ratelimit.Rejections
	tokenPerIP, tokenPerClient, deviceUserCodePerIP, registerPerIP, connectPerIP *ratelimit.Limiter
	apiAuthFailuresPerIP, consoleLoginPerIP                                      *ratelimit.Limiter
	deviceUserCodePerCode, deviceUserCodeTotal                                   *ratelimit.Limiter
	certificatesPerClaim                                                         *ratelimit.Limiter
}

func newLimits(cfg config.Config, reg prometheus.Registerer, now func() time.Time) (*limits, error) {
	rej, err := ratelimit.NewRejections(reg, "tokenPerIP", "tokenPerClient", "deviceUserCodePerIP", "registerPerIP",
		"connectPerIP", "connectionsPerThing", "mqtt.maxPacketSize", "mqtt.maxMessageSize", "apiAuthFailuresPerIP",
		"pendingConnectionsPerIP", "mqtt.maxTopicBytes", "mqtt.maxTopicLevels",
		"consoleLoginPerIP", "deviceUserCodePerCode", "deviceUserCodeTotal", "certificatesPerClaim")
	if err != nil {
		return nil, err
	}
	l := &limits{rejections: rej}
	for _, x := range []struct {
		name string
		rate string
		dst  **ratelimit.Limiter
		// onboarding limits spare limits.exemptSources
		onboarding bool
	}{
		{"tokenPerIP", cfg.Limits.TokenPerIP, &l.tokenPerIP, true},
		{"tokenPerClient", cfg.Limits.TokenPerClient, &l.tokenPerClient, false},
		{"deviceUserCodePerIP", cfg.Limits.DeviceUserCodePerIP, &l.deviceUserCodePerIP, false},
		{"registerPerIP", cfg.Limits.RegisterPerIP, &l.registerPerIP, true},
		{"connectPerIP", cfg.Limits.ConnectPerIP, &l.connectPerIP, true},
		{"apiAuthFailuresPerIP", cfg.Limits.APIAuthFailuresPerIP, &l.apiAuthFailuresPerIP, false},
		{"consoleLoginPerIP", cfg.Limits.ConsoleLoginPerIP, &l.consoleLoginPerIP, false},
		{"deviceUserCodePerCode", cfg.Limits.DeviceUserCodePerCode, &l.deviceUserCodePerCode, false},
		{"deviceUserCodeTotal", cfg.Limits.DeviceUserCodeTotal, &l.deviceUserCodeTotal, false},
		{"certificatesPerClaim", cfg.Limits.CertificatesPerClaim, &l.certificatesPerClaim, false},
	} {
		r, err := ratelimit.ParseRate(x.rate)
		if err != nil {
			return nil, fmt.Errorf("limits.%s: %w", x.name, err)
		}
		o := ratelimit.Options{Now: now, Rejections: rej}
		if x.onboarding {
			o.Exempt = cfg.Limits.ExemptSources
		}
		if x.name == "deviceUserCodeTotal" {
			o.MaxKeys = 1 // one bucket shared by every address
		}
		*x.dst = ratelimit.New(x.name, r, o)
	}
	return l, nil
}
