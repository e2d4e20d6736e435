package lobby

// TargetTokenAD is the additional data a gatehouse target's API token is
// sealed with (package seal); `gatehouse keys rotate-master` needs it to
// reseal the token under a new master key.
func TargetTokenAD(name string) []byte { return targetTokenAD(name) }

// AssignmentAD: the same for a device's sealed assignment secret, by the
// device's fingerprint.
func AssignmentAD(fingerprint string) []byte { return assignmentAD(fingerprint) }
