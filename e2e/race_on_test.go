//go:build race

package e2e

// raceBuild: the tests run under -race, so the binary they drive is built
// with the race detector too.
const raceBuild = true
