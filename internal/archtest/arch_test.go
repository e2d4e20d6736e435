package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Doc        string
	Imports    []string
	Deps       []string
	Name       string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "github.com/gatehouse-iot/gatehouse/...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return pkgs
}

const module = "github.com/gatehouse-iot/gatehouse/"

func TestEveryPackageHasDoc(t *testing.T) {
	for _, p := range listPackages(t) {
		if len(strings.Fields(p.Doc)) < 5 {
			t.Errorf("package %s has no doc comment saying why it exists (got %q)", p.ImportPath, p.Doc)
		}
	}
}

func TestDependencyDirection(t *testing.T) {
	// forbidden[a] lists what package a must not depend on, directly or not.
	forbidden := map[string][]string{
		"internal/policy":   {"database/sql", "net/http", "os/exec", module + "internal/store"},
		"internal/awsiot":   {module + "internal/httpapi", module + "internal/app", "github.com/aws/aws-sdk-go-v2/service/iot"},
		"internal/awssync":  {module + "internal/httpapi", module + "internal/app", module + "internal/awsiot"},
		"internal/pki":      {"database/sql", "net/http", module + "internal/store"},
		"internal/seal":     {"database/sql", "net/http", module + "internal/store"},
		"internal/store":    {"net/http", module + "internal/registry", module + "internal/httpapi"},
		"internal/registry": {"net/http", module + "internal/httpapi", module + "internal/app"},
		"internal/events":   {"net/http", module + "internal/registry"},
		"internal/config":   {module + "internal/store", module + "internal/app"},
		// The API defines the interfaces the console and broker satisfy.
		"internal/httpapi": {module + "internal/console", module + "internal/broker"},
		"internal/console": {module + "internal/broker"},
		// Body decoding is mechanism below every edge (the registry's
		// import uses it): no HTTP, no storage.
		"internal/jsonbody": {"net/http", module + "internal/store", module + "internal/registry"},
		// Limits are mechanism only: no storage, no domain packages.
		"internal/ratelimit": {"database/sql", module + "internal/store", module + "internal/registry", module + "internal/oauth", module + "internal/broker"},
		// The cluster carries messages; deciding what may be published or
		// received stays in the broker.
		"internal/cluster": {"database/sql", module + "internal/store", module + "internal/registry", module + "internal/broker", module + "internal/policy"},
		// Fleet provisioning is a service: the broker answers its MQTT API
		// through the app's wiring, the edges call it.
		"internal/fleetprov": {module + "internal/broker", module + "internal/httpapi", module + "internal/awsiot", module + "internal/app"},
		// Test support builds the stack from the domain packages, never
		// from the wiring or the edges that tests of those edges build.
		"internal/testenv": {module + "internal/app", module + "internal/cli", module + "internal/httpapi", module + "internal/console", module + "internal/broker"},
	}
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(p.ImportPath, module)
		for _, bad := range forbidden[rel] {
			for _, d := range p.Deps {
				if d == bad {
					t.Errorf("%s depends on %s", rel, bad)
				}
			}
		}
		// Only the binary wires the application together.
		for _, imp := range p.Imports {
			if imp == module+"internal/app" && rel != "internal/cli" && rel != "cmd/gatehouse" {
				t.Errorf("%s imports internal/app; only the command line may", rel)
			}
			// Test support is for tests: only _test.go files import it.
			if imp == module+"internal/testenv" {
				t.Errorf("%s imports internal/testenv from a non-test file; only _test.go files may", rel)
			}
		}
	}
}
