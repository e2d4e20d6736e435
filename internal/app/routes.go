package app

import (
	"net/http"

	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/httpapi"
)

// routes is Gatehouse's one HTTP route table: every public pattern of the
// HTTP (and mutual-TLS HTTPS) listener, each package handing its own. There
// is no catch-all: an unknown path is 404.
func (a *App) routes(mux *http.ServeMux, adapters, awsIoT http.Handler) {
	// The admin API and the web console.
	mux.Handle("/api/v1/", a.api)
	mux.Handle("/console/", a.Console)
	mux.Handle("/console/api/", a.Console)

	// Operations.
	health := httpapi.Health(a.Store)
	mux.Handle("GET /healthz", health)
	mux.Handle("GET /readyz", health)
	mux.Handle("GET /metrics", httpapi.Metrics(a.metrics))

	// Devices: HTTPS publish, the registration gateway, the CA and CRLs.
	mux.Handle("POST /topics/{topic...}", a.Broker.PublishHandler())
	devices := a.Certs.DeviceHandler()
	for _, p := range certs.DevicePatterns() {
		mux.Handle(p, devices) // POST /register, GET /ca, GET /crl ...
	}

	// OAuth 2.0 and OpenID Connect: /oauth2/..., /.well-known/...,
	// /device, /login, /things/{name}, /am/... (oauth.Server.Routes).
	for _, r := range a.OAuth.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}

	// Existing brokers' auth adapters and the AWS-IoT-compatible API.
	mux.Handle("/authorizer/", adapters)
	if awsIoT != nil {
		mux.Handle(a.cfg.AWSIoT.Prefix+"/", awsIoT)
	}
}
