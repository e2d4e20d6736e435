// Package cli is the gatehouse command line: `serve` runs the server, the
// other commands administer a running server through its REST API (or, for
// recovery, the database directly) and act as a device would.
//
// It exists so that cmd/gatehouse stays a few lines and every command can be
// run in tests with its own arguments, environment and output streams.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Env is what a command may touch of the outside world.
type Env struct {
	Args   []string
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Version is printed by `version` and the serve banner.
	Version string

	// command is the resource and verb being run ("lobby show"), for
	// usage lines; set by sub.
	command string
}

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

func commands() map[string]command {
	cmds := map[string]command{
		"serve":         {"run the server (embedded SQLite by default)", runServe},
		"version":       {"print the version", runVersion},
		"config":        {"print the effective configuration, secrets masked", runConfig},
		"admin-token":   {"mint an admin API token directly in the database (recovery)", runAdminToken},
		"things":        {"list, get, create, update, delete things", runThings},
		"thing-types":   {"list, get, create, update, delete thing types", runThingTypes},
		"users":         {"list, get, create, update, delete users", runUsers},
		"groups":        {"list, get, create, delete groups and their members", runGroups},
		"relationships": {"list, add, remove relationships between users and things", runRelationships},
		"events":        {"list, tail or prune the event log", runEvents},
		"api-tokens":    {"list, create, revoke admin API tokens", runAPITokens},
		"bench":         {"benchmark the MQTT broker against plain mochi-mqtt and Mosquitto", runBench},
		"bench-target":  {"serve one broker for `gatehouse bench` (internal)", runBenchTarget},
		// Certificates and the registration gateway (certs.go).
		"register":            {"register this device with a registration token; writes certificate, key and root CA", runRegister},
		"ca":                  {"fetch the CA chain or CRL; show or import the CA", runCA},
		"cert":                {"list, show, activate, deactivate, revoke, rotate device certificates", runCert},
		"registration-tokens": {"list, create, revoke registration tokens of POST /register", runRegistrationTokens},
		"manufacturer-cas":    {"list, add, show, remove trusted manufacturer CAs", runManufacturerCAs},
	}
	cmds["policies"] = command{"create, version, attach and simulate AWS IoT policies", runPolicies}
	cmds["authorizers"] = command{"manage custom authorizers (token signing keys)", runAuthorizers}
	cmds["apps"] = command{"create, list, get, delete registered OAuth apps (console, mobile and web apps)", runApps}
	cmds["keys"] = command{"rotate the OAuth signing key (online) or the master key that seals keys at rest (offline)", runKeys}
	for name, c := range simulateCommands() {
		cmds[name] = c
	}
	for name, c := range backupCommands() {
		cmds[name] = c
	}
	for name, c := range lobbyCommands() {
		cmds[name] = c
	}
	for name, c := range deviceCommands() {
		cmds[name] = c
	}
	for name, c := range extraCommands() {
		cmds[name] = c
	}
	for name, c := range accessCommands() {
		cmds[name] = c
	}
	return cmds
}

// errUsage marks an error whose message is usage help.
var errUsage = errors.New("usage")

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, env *Env) int {
	cmds := commands()
	if len(env.Args) == 0 || isHelp(env.Args[0]) {
		printHelp(env.Stdout, cmds)
		return 0
	}
	c, ok := cmds[env.Args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "gatehouse: unknown command %q\n\n", env.Args[0])
		printHelp(env.Stderr, cmds)
		return 2
	}
	if err := c.run(ctx, env, env.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(env.Stderr, "gatehouse %s: %v\n", env.Args[0], err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

func printHelp(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "Gatehouse: identity, onboarding and access control for IoT fleets.")
	fmt.Fprintln(w, "\nUsage: gatehouse <command> [flags] [arguments]\n\nCommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'gatehouse <command> -h' for a command's flags. Client commands read")
	fmt.Fprintln(w, "GATEHOUSE_SERVER (default http://127.0.0.1:8080) and GATEHOUSE_TOKEN.")
}

func runVersion(_ context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "version", "version")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "gatehouse %s\n", env.Version)
	return nil
}

// parse parses flags that may stand before, between or after positional
// arguments, and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func newFlagSet(env *Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	if resource, _, _ := strings.Cut(env.command, " "); env.command != "" && !strings.HasPrefix(usage, resource+" ") {
		// Verbs shared between resources name only themselves ("get
		// NAME"): show the command actually run.
		_, rest, _ := strings.Cut(strings.TrimSpace(usage), " ")
		usage = strings.TrimSpace(env.command + " " + rest)
	}
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: gatehouse %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// splitList splits a comma-separated flag value.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
