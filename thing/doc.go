// Package thing is Gatehouse's Go device SDK: what runs on a device
// ("thing") to register with a Gatehouse server, prove who it is, get
// OAuth 2.0 access tokens and talk MQTT or HTTPS to the broker.
//
// It talks to the server only through its public protocols (HTTP and
// MQTT), so it works against any Gatehouse replica.
//
// # A device's lifecycle
//
//  1. Provisioning. The device is given a state directory, the server URL
//     and its name. Either an operator hands it a registration token and the
//     device calls [Thing.Register], which generates an ECDSA P-256 key on
//     the device, sends only a certificate signing request (the private key
//     never leaves the device) and stores the certificate, the root CA and
//     the server's endpoints; or an operator creates the thing and gives it
//     a client secret ([Thing.SetClientSecret]) or registers the public key
//     the device prints ([Thing.PublicJWK]) for private_key_jwt.
//  2. Authentication. [Thing.Token] returns an access token, fetched with
//     client credentials (client secret or a signed JWT assertion) at the
//     OAuth token endpoint or at the ForgeRock-style things endpoint, cached
//     and refreshed shortly before it expires. An input-limited device whose
//     owner must approve it runs [Thing.DeviceFlow] instead: the user code
//     and verification URI go to a callback, the device polls, and the
//     resulting refresh token keeps it authenticated afterwards.
//  3. Messaging. [Thing.Connect] opens an MQTT connection that logs in with
//     the access token as password (and reconnects with a fresh token when
//     the token expires or is revoked), with the registered certificate
//     (mutual TLS, the server checked against the stored root CA), or through
//     an AWS-IoT-style custom authorizer with a signature of the token.
//     [Thing.PublishHTTPS] publishes one message over HTTPS.
//
// # When the server says "not now"
//
// Servers limit what one address or one thing may do. Every call of the
// SDK treats HTTP 429 and 503, and an MQTT CONNACK 0x88 server
// unavailable, 0x89 server busy, 0x97 quota exceeded or 0x9F connection
// rate exceeded, as "not now": it waits the server's Retry-After (HTTP)
// plus a random share of a ceiling that doubles with every try (1 s up to
// 10 s, "full jitter"), logs the retry at debug level and tries again,
// until the call's context ends, its deadline would pass before the next
// try, or [Retry.MaxWait] is used up. After a dropped connection the first
// reconnection waits a random share of [Retry.Base], so a fleet dropped by
// a broker restart comes back spread out. [Config.Retry] tunes the policy,
// observes retries ([Retry.OnRetry]) or disables them.
//
// # The device lobby
//
// A generic device made without knowing where it will work carries only a
// manufacturer certificate. [JoinLobby] connects it to the lobby (MQTT over
// mutual TLS, client id = the SHA-256 fingerprint of the certificate,
// several lobby URLs tried in turn), knocks until an operator claims it by
// that fingerprint (the QR code on the device), and takes it to the target
// it is assigned: this Gatehouse (login with the manufacturer certificate
// as the thing), another MQTT broker, or another Gatehouse where it
// registers with the registration token of its assignment. The assignment
// is kept in the state directory (lobby.json, target/). It is taken only if
// the lobby signed it with a certificate that verifies as the lobby's TLS
// server certificate did ([VerifyLobbyMessage]); anything else on the
// assignment topic is refused.
//
// Everything the device must remember lives in small files in the state
// directory, readable by the owner only (0600), and is loaded on start:
//
//	state.json      thing name, certificate id, endpoints (not secret)
//	client_secret   the OAuth client secret
//	key.pem         the device's private key (PKCS #8)
//	cert.pem        the device certificate
//	ca.pem          the root CA that issued it and the server's certificate
//	token.json      the cached access and refresh tokens
//
// Secrets are never logged.
package thing
