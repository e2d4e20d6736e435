package oauth

// SigningKeyAD is the additional data a signing key's private key is
// sealed with (package seal); `gatehouse keys rotate-master` needs it to
// reseal the key under a new master key.
func SigningKeyAD(kid string) []byte { return sealAD(kid) }
