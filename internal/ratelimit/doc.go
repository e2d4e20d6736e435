// Package ratelimit holds Gatehouse's abuse limits: keyed token buckets
// (per client address, per OAuth client, per thing) with an injected clock
// and bounded memory, the parsing of the "N/period" rates the configuration
// uses, the one Prometheus counter of rejections by limit name, and the
// opt-in trusted-proxy rule that decides which address a request comes
// from behind a load balancer.
//
// It exists so that the token endpoint, the device page, the registration
// gateway and the MQTT broker limit the same way, are configured the same
// way and report to operators the same way.
package ratelimit
