// Package certs is Gatehouse's certificate service: the PKI of package pki
// made persistent and put to work for devices. It owns Gatehouse's CA (created
// on first start or imported, keys sealed at rest), the registration gateway
// (POST /register with a DeviceToken, the certificate vending contract of
// AWS IoT reference deployments), device certificate records and their life cycle
// (activate, deactivate, revoke, rotate, CRLs), trusted manufacturer CAs with
// just-in-time registration, and the certificate check behind mTLS logins.
//
// It exists because each of those touches several stores at once - a
// registration consumes a token, creates a thing, stores a certificate and
// records events - and must do so in one transaction so that a failure leaves
// nothing half-made, while package pki stays pure crypto without a database
// and package registry stays free of X.509.
package certs
