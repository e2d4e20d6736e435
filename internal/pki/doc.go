// Package pki is Gatehouse's certificate authority and certificate checker:
// pure X.509 on the standard library, with no database and no HTTP.
//
// It exists because several front doors hand out or accept device
// certificates and must all apply the same rules: the registration gateway
// (POST /register, key pair generated server-side or a device CSR), fleet
// provisioning from a CSR, the device lobby that admits devices holding a
// manufacturer certificate, the MQTT/TLS listeners that authenticate things by
// certificate, and the admin API that revokes certificates. Keeping the rules
// here, as plain functions over crypto/x509 values, lets them be tested and
// fuzzed without a server.
//
// What it does:
//
//   - NewCA creates a self-signed root CA and optionally an intermediate that
//     issues; Marshal and LoadCA move a CA to and from storage (certificates
//     as PEM, private keys as PKCS#8 that the caller seals with package seal).
//   - ParseCSR and (*CA).SignCSR turn a device's certificate signing request
//     into a client certificate under a fixed policy: the CSR's signature must
//     verify, its key must be ECDSA P-256/P-384, Ed25519 or RSA of 2048 to
//     8192 bits, its common name must be the expected name, the validity is
//     bounded. Only the public key and the common name come from the CSR;
//     every other subject field and extension is set by the CA, because
//     subject fields feed policy variables (${iot:Certificate.Subject.*}).
//     Rejections are *RequestError values with a machine-readable Reason.
//   - (*CA).IssueKeyPair generates the device key server-side, for the
//     registration gateway's {"certificateData":{"pem","key_pair":{...}}}.
//   - Fingerprint is the lowercase hex SHA-256 of a certificate's DER: the
//     certificate id, and the key of the device lobby (its QR code).
//     ParseFingerprint accepts the forms people paste.
//   - Verifier checks a presented chain against Gatehouse's own CA and the
//     manufacturer CAs it trusts, requires client authentication usage,
//     consults revocation, and returns what policies need: which CA vouched,
//     the fingerprint, the subject and issuer attributes, the thing name.
//     Rejections are *VerifyError values.
//   - (*CA).CreateCRL, ParseCRL and RevocationSet publish and consume
//     certificate revocation lists.
//
// Randomness and time are injected (Settings.Rand, Settings.Now). Since Go
// 1.26 the standard library ignores the random source for key generation and
// signing and always uses the system's; the injected source still decides
// serial numbers. Tests that need reproducible keys use
// testing/cryptotest.SetGlobalRandom.
package pki
