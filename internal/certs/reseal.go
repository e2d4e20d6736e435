package certs

// CAKeyAD and CARootKeyAD are the additional data the CA's issuing and
// root private keys are sealed with (package seal); `gatehouse keys
// rotate-master` needs them to reseal the keys under a new master key.
func CAKeyAD(name string) []byte { return keyAD(name) }

// CARootKeyAD: see CAKeyAD.
func CARootKeyAD(name string) []byte { return rootKeyAD(name) }
