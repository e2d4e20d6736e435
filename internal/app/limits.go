package app

import (
	"fmt"
	"net/netip"
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
	trustedProxies                                                               []netip.Prefix
}

func newLimits(cfg config.Config, reg prometheus.Registerer, now func() time.Time) (*limits, error) {
	rej, err := ratelimit.NewRejections(reg, "tokenPerIP", "tokenPerClient", "deviceUserCodePerIP", "registerPerIP",
		"connectPerIP", "connectionsPerThing", "mqtt.maxPacketSize", "mqtt.maxMessageSize", "apiAuthFailuresPerIP",
		"consoleLoginPerIP", "deviceUserCodePerCode", "deviceUserCodeTotal")
	if err != nil {
		return nil, err
	}
	l := &limits{rejections: rej}
	for _, x := range []struct {
		name string
		rate string
		dst  **ratelimit.Limiter
	}{
		{"tokenPerIP", cfg.Limits.TokenPerIP, &l.tokenPerIP},
		{"tokenPerClient", cfg.Limits.TokenPerClient, &l.tokenPerClient},
		{"deviceUserCodePerIP", cfg.Limits.DeviceUserCodePerIP, &l.deviceUserCodePerIP},
		{"registerPerIP", cfg.Limits.RegisterPerIP, &l.registerPerIP},
		{"connectPerIP", cfg.Limits.ConnectPerIP, &l.connectPerIP},
		{"apiAuthFailuresPerIP", cfg.Limits.APIAuthFailuresPerIP, &l.apiAuthFailuresPerIP},
		{"consoleLoginPerIP", cfg.Limits.ConsoleLoginPerIP, &l.consoleLoginPerIP},
		{"deviceUserCodePerCode", cfg.Limits.DeviceUserCodePerCode, &l.deviceUserCodePerCode},
		{"deviceUserCodeTotal", cfg.Limits.DeviceUserCodeTotal, &l.deviceUserCodeTotal},
	} {
		r, err := ratelimit.ParseRate(x.rate)
		if err != nil {
			return nil, fmt.Errorf("limits.%s: %w", x.name, err)
		}
		o := ratelimit.Options{Now: now, Rejections: rej}
		if x.name == "deviceUserCodeTotal" {
			o.MaxKeys = 1 // one bucket shared by every address
		}
		*x.dst = ratelimit.New(x.name, r, o)
	}
	for _, p := range cfg.HTTP.TrustedProxies {
		pr, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("http.trustedProxies: %w", err)
		}
		l.trustedProxies = append(l.trustedProxies, pr)
	}
	return l, nil
}
