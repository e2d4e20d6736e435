package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/gatehouse-iot/gatehouse/internal/lobby"
)

func runLobby(ctx context.Context, env *Env, args []string) error {
	deviceAction := func(verb, path string) func(context.Context, *Env, []string) error {
		return func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "lobby "+verb, "lobby "+verb+" DEVICE [--reason R]")
			reason := fs.String("reason", "", "why (kept in the history)")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			return c.print(ctx, "POST", "/api/v1/lobby/devices/"+escape(pos[0])+"/"+path, nil, map[string]string{"reason": *reason})
		}
	}
	claimFlags := func(verb, path string) func(context.Context, *Env, []string) error {
		return func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "lobby "+verb, "lobby "+verb+" DEVICE|QR-PAYLOAD --target T [--config C] [--thing-name N]")
			target, cfg, thing := fs.String("target", "", "target name (required)"), fs.String("config", "", "configuration handed to the device"), fs.String("thing-name", "", "thing name at a local target (default: the certificate's common name)")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			if *target == "" {
				return usagef("--target is required")
			}
			body := map[string]string{"device": pos[0], "target": *target, "config": *cfg, "thingName": *thing}
			p := path
			if strings.Contains(path, "%s") {
				p = fmt.Sprintf(path, escape(pos[0]))
			}
			return c.print(ctx, "POST", p, nil, body)
		}
	}
	return sub(ctx, env, "lobby", args, map[string]func(context.Context, *Env, []string) error{
		"list": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "lobby list", "lobby list [--state S] [--target T] [--all]")
			state, target := fs.String("state", "", "knocking, inlobby, claimed, commissioned, arrived, rejected or decommissioned"), fs.String("target", "", "only devices routed to this target")
			limit, after, all := listFlags(fs)
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			q := pageQuery(*limit, *after)
			if *state != "" {
				q.Set("state", *state)
			}
			if *target != "" {
				q.Set("target", *target)
			}
			return listAll(ctx, c, "/api/v1/lobby/devices", q, *all)
		},
		"show":         simpleGet("/api/v1/lobby/devices/"),
		"claim":        claimFlags("claim", "/api/v1/lobby/claims"),
		"preclaim":     claimFlags("preclaim", "/api/v1/lobby/preclaims"),
		"reroute":      claimFlags("reroute", "/api/v1/lobby/devices/%s/reroute"),
		"reject":       deviceAction("reject", "reject"),
		"decommission": deviceAction("decommission", "decommission"),
		"reset":        deviceAction("reset", "factory-reset"),
		"targets":      runLobbyTargets,
	})
}

func runLobbyTargets(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "lobby targets", args, map[string]func(context.Context, *Env, []string) error{
		"list": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "lobby targets list", "lobby targets list")
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			return listAll(ctx, c, "/api/v1/lobby/targets", url.Values{"limit": {"1000"}}, true)
		},
		"get":    simpleGet("/api/v1/lobby/targets/"),
		"delete": simpleDelete("/api/v1/lobby/targets/"),
		"create": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "lobby targets create", "lobby targets create NAME --kind local|mqtt|gatehouse [--thing-type T] [--endpoint URL --ca FILE] [--api-url URL --api-token-file FILE] [--config C]")
			apiURL, tokenFile := fs.String("api-url", "", "a gatehouse target's base URL"), fs.String("api-token-file", "", "file holding an admin API token of a gatehouse target (env GATEHOUSE_TARGET_API_TOKEN)")
			kind, thingType, endpoint, caFile, cfg, desc := fs.String("kind", "local", "local (this Gatehouse), mqtt (an endpoint URL) or gatehouse (another Gatehouse)"),
				fs.String("thing-type", "", "thing type of things a local target registers"), fs.String("endpoint", "", "MQTT URL for an mqtt target"),
				fs.String("ca", "", "PEM CA chain devices trust the endpoint by"), fs.String("config", "", "configuration handed to devices"), fs.String("description", "", "description")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			body := map[string]string{"name": pos[0], "kind": *kind, "thingType": *thingType, "endpoint": *endpoint, "config": *cfg, "description": *desc}
			if *apiURL != "" {
				body["apiUrl"] = *apiURL
			}
			if tok := env.Getenv("GATEHOUSE_TARGET_API_TOKEN"); tok != "" {
				body["apiToken"] = tok
			}
			if *tokenFile != "" {
				b, err := os.ReadFile(*tokenFile)
				if err != nil {
					return err
				}
				body["apiToken"] = strings.TrimSpace(string(b))
			}
			if *caFile != "" {
				b, err := os.ReadFile(*caFile)
				if err != nil {
					return err
				}
				body["caPem"] = string(b)
			}
			return c.print(ctx, "POST", "/api/v1/lobby/targets", nil, body)
		},
	})
}

// runQR writes the QR code of a device certificate: the payload is the
// SHA-256 fingerprint the lobby knows the device by.
func runQR(_ context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "qr", "qr --cert device.pem [--out qr] : write qr.png and qr.svg with the certificate's fingerprint")
	certFile, out := fs.String("cert", "", "device certificate (PEM)"), fs.String("out", "qr", "output path without extension")
	fp := fs.String("fingerprint", "", "use this fingerprint instead of --cert")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *fp != "":
		v, err := lobby.ParseQR(*fp)
		if err != nil {
			return err
		}
		*fp = v
	case *certFile != "":
		b, err := os.ReadFile(*certFile)
		if err != nil {
			return err
		}
		block, _ := pem.Decode(b)
		if block == nil || block.Type != "CERTIFICATE" {
			return errors.New("--cert is not a PEM certificate")
		}
		sum := sha256.Sum256(block.Bytes)
		*fp = hex.EncodeToString(sum[:])
	default:
		return usagef("--cert or --fingerprint is required")
	}
	png, err := lobby.QRPNG(*fp)
	if err != nil {
		return err
	}
	svg, err := lobby.QRSVG(*fp)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out+".png", png, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(*out+".svg", svg, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s\nwrote %s.png and %s.svg\n", lobby.QRPayload(*fp), *out, *out)
	return nil
}
