// Package seal encrypts secrets at rest: CA private keys, OAuth signing keys
// and anything else Gatehouse must keep in its database but must not leave
// readable there.
//
// It exists so that a copy of the database (a backup, a replica, a stolen
// SQLite file) does not hand out the keys that make every device certificate
// and access token trustworthy. Only the master key, kept outside the
// database (see LoadOrCreateKeyFile), opens what was sealed.
//
// Sealing is envelope encryption with AES-256-GCM: every message gets a fresh
// random data key that encrypts the plaintext, and the data key is wrapped by
// a key-encryption key derived from the master key. The sealed form starts
// with a format version and the id of the master key, so the master key can
// be rotated: a Sealer seals with its primary key and opens with the primary
// or any old key it was given (WithOldKeys); Reseal moves a message to the
// primary key.
//
// The additional data given to Seal must be given again to Open. Callers bind
// a sealed value to where it lives (for example "ca/root/key" or
// "oauth/signing-key/<kid>"), so a sealed blob copied to another row does not
// open there.
package seal
