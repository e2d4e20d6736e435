// Package fleetprov is AWS IoT fleet provisioning on Gatehouse: stored,
// versioned provisioning templates (a focused evaluator of AWS's
// CloudFormation-like template bodies), claim certificates, and the MQTT
// API devices built with the AWS IoT Device SDKs call unchanged
// (CreateKeysAndCertificate, CreateCertificateFromCsr and RegisterThing on
// $aws/certificates/... and $aws/provisioning-templates/..., JSON or CBOR).
// It exists so that a device holding only a claim can turn itself into a
// thing with its own certificate, through the same certificate issuance,
// registry and event log as every other path.
package fleetprov
