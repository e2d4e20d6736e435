package awsiot

// AccessKeyAD is the additional data an access key's secret is sealed with
// (package seal); `gatehouse keys rotate-master` needs it to reseal the
// secret under a new master key.
func AccessKeyAD(id string) []byte { return additionalData(id) }
