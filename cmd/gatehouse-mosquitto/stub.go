//go:build !(cgo && mosquitto)

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "gatehouse-mosquitto is a Mosquitto plugin: build it with `make mosquitto-plugin` (go build -buildmode=c-shared -tags mosquitto, cgo and Mosquitto's headers) and load the .so from mosquitto.conf")
	os.Exit(2)
}
