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

// group is a heading of `gatehouse help` and the commands under it.
type group struct {
	title    string
	commands []named
}

// named is a command with its name.
type named struct {
	name string
	command
}

// commandGroups is every command, once, in the groups `gatehouse help`
// shows them in.
func commandGroups() []group {
	return []group{
		{"Server", []named{
			{"serve", command{"run the server (embedded SQLite by default)", runServe}},
			{"config", command{"print the effective configuration, secrets masked", runConfig}},
			{"version", command{"print the version", runVersion}},
		}},
		{"Registry", []named{
			{"things", command{"list, get, create, update, delete things", runThings}},
			{"thing-types", command{"list, get, create, update, delete thing types", runThingTypes}},
			{"users", command{"list, get, create, update, delete users", runUsers}},
			{"groups", command{"list, get, create, delete groups and their members", runGroups}},
			{"relationships", command{"list, add, remove relationships between users and things", runRelationships}},
			{"access-requests", command{"request, list, approve, deny, cancel access to things", runAccessRequests}},
			{"registry", command{"export or import the registry as JSON or CSV", runRegistry}},
			{"events", command{"list, tail or prune the event log", runEvents}},
			{"sync", command{"synchronize the registry with AWS IoT (or any AWS-IoT-compatible API)", runSync}},
		}},
		{"Identity and access", []named{
			{"policies", command{"create, version, attach and simulate AWS IoT policies", runPolicies}},
			{"authorizers", command{"manage custom authorizers (token signing keys)", runAuthorizers}},
			{"apps", command{"create, list, get, delete registered OAuth apps (console, mobile and web apps)", runApps}},
			{"api-tokens", command{"list, create, revoke admin API tokens", runAPITokens}},
			{"aws-keys", command{"list, create, revoke access keys of the AWS-IoT-compatible API (SigV4)", runAWSKeys}},
			{"token", command{"get an access token with client credentials (a thing's id and secret)", runToken}},
			{"device-login", command{"log in through the device authorization grant and print the tokens", runDeviceLogin}},
			{"introspect", command{"introspect a token (RFC 7662) as an authenticated client", runIntrospect}},
		}},
		{"Certificates", []named{
			{"ca", command{"fetch the CA chain or CRL; show or import the CA", runCA}},
			{"cert", command{"list, show, activate, deactivate, revoke, rotate device certificates", runCert}},
			{"registration-tokens", command{"list, create, revoke registration tokens of POST /register", runRegistrationTokens}},
			{"manufacturer-cas", command{"list, add, show, remove trusted manufacturer CAs", runManufacturerCAs}},
			{"provisioning-templates", command{"AWS IoT fleet provisioning templates: create, version, enable; mint claim certificates", runProvisioningTemplates}},
			{"register", command{"register this device with a registration token; writes certificate, key and root CA", runRegister}},
		}},
		{"Lobby", []named{
			{"lobby", command{"list, show, claim, reject, reroute, reset lobby devices; manage targets", runLobby}},
			{"qr", command{"write the QR code (PNG and SVG) of a device certificate's fingerprint", runQR}},
		}},
		{"Devices", []named{
			{"device", command{"act as a device: register, token, jwk, publish, subscribe, device-flow, lobby (state in --state-dir)", runDevice}},
			{"simulate", command{"run a fleet of simulated devices (register/token, MQTT, telemetry) against a running server", runSimulate}},
		}},
		{"Operations", []named{
			{"keys", command{"rotate the OAuth signing key (online) or the master key that seals keys at rest", runKeys}},
			{"backup", command{"copy the SQLite database consistently, while the server runs (PostgreSQL: pg_dump)", runBackup}},
			{"restore", command{"restore a SQLite backup made by `gatehouse backup` (server stopped)", runRestore}},
			{"admin-token", command{"mint an admin API token directly in the database (recovery)", runAdminToken}},
			{"dev", command{"load, soak and benchmark tools: bench, bench-cluster, bench-target, soak, token-load", runDev}},
		}},
	}
}

// commands is every command by name.
func commands() map[string]command {
	cmds := map[string]command{}
	for _, g := range commandGroups() {
		for _, c := range g.commands {
			cmds[c.name] = c.command
		}
	}
	return cmds
}

// runDev is `gatehouse dev`: tools that measure or load a server rather
// than administer it.
func runDev(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "dev", args, map[string]func(context.Context, *Env, []string) error{
		"bench":         runBench,
		"bench-cluster": runBenchCluster,
		"bench-target":  runBenchTarget,
		"soak":          runSoak,
		"token-load":    runTokenLoad,
	})
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
		printHelp(env.Stdout)
		return 0
	}
	c, ok := cmds[env.Args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "gatehouse: unknown command %q\n\n", env.Args[0])
		printHelp(env.Stderr)
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

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "Gatehouse: identity, onboarding and access control for IoT fleets.")
	fmt.Fprintln(w, "\nUsage: gatehouse <command> [flags] [arguments]")
	width := 0
	for _, g := range commandGroups() {
		for _, c := range g.commands {
			width = max(width, len(c.name))
		}
	}
	for _, g := range commandGroups() {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, c := range g.commands {
			fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
		}
	}
	fmt.Fprintln(w, "\nRun 'gatehouse <command> -h' for a command's verbs or flags. Client commands read")
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
