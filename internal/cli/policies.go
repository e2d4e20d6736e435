package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
)

// readDocument reads a policy document from a file ("-" for stdin) or takes
// it inline when it starts with "{".
func readDocument(env *Env, arg string) (json.RawMessage, error) {
	var b []byte
	switch {
	case strings.HasPrefix(strings.TrimSpace(arg), "{"):
		b = []byte(arg)
	case arg == "-":
		var err error
		if b, err = io.ReadAll(io.LimitReader(env.Stdin, 1<<20)); err != nil {
			return nil, err
		}
	default:
		var err error
		if b, err = os.ReadFile(arg); err != nil {
			return nil, err
		}
	}
	if !json.Valid(b) {
		return nil, usagef("the policy document is not valid JSON")
	}
	return b, nil
}

func runPolicies(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "policies", args, map[string]func(context.Context, *Env, []string) error{
		"list":   simpleList("policies", "/api/v1/policies"),
		"get":    simpleGet("/api/v1/policies/"),
		"delete": simpleDelete("/api/v1/policies/"),
		"create": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "policies create", "policies create NAME FILE|-|'{json}' [--description D]")
			desc := fs.String("description", "", "description")
			c, pos, err := setup(env, fs, args, 2)
			if err != nil {
				return err
			}
			doc, err := readDocument(env, pos[1])
			if err != nil {
				return err
			}
			return c.print(ctx, "POST", "/api/v1/policies", nil, map[string]any{"name": pos[0], "description": *desc, "document": doc})
		},
		"add-version": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "policies add-version", "policies add-version NAME FILE|-|'{json}' [--default]")
			def := fs.Bool("default", false, "make the new version the one in force")
			c, pos, err := setup(env, fs, args, 2)
			if err != nil {
				return err
			}
			doc, err := readDocument(env, pos[1])
			if err != nil {
				return err
			}
			return c.print(ctx, "POST", "/api/v1/policies/"+escape(pos[0])+"/versions", nil, map[string]any{"document": doc, "setAsDefault": *def})
		},
		"attach": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "policies attach", "policies attach NAME thing|group|certificate|scope TARGET")
			c, pos, err := setup(env, fs, args, 3)
			if err != nil {
				return err
			}
			return c.print(ctx, "POST", "/api/v1/policies/"+escape(pos[0])+"/attachments", nil, map[string]any{"targetKind": pos[1], "target": pos[2]})
		},
		"detach": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "policies detach", "policies detach NAME thing|group|certificate|scope TARGET")
			c, pos, err := setup(env, fs, args, 3)
			if err != nil {
				return err
			}
			q := url.Values{"targetKind": {pos[1]}, "target": {pos[2]}}
			return c.do(ctx, "DELETE", "/api/v1/policies/"+escape(pos[0])+"/attachments?"+q.Encode(), nil, nil, nil)
		},
		"simulate": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "policies simulate", "policies simulate ACTION RESOURCE [--thing T] [--client-id C] [--scope s]... : may this principal do ACTION (iot:Publish ...) on RESOURCE (a topic, filter or client id)?")
			thing, clientID, fp, ip := fs.String("thing", "", "thing name"), fs.String("client-id", "", "MQTT client id (default: the thing name)"), fs.String("certificate", "", "certificate fingerprint"), fs.String("source-ip", "", "client address")
			var scopes multiFlag
			fs.Var(&scopes, "scope", "token scope (repeatable)")
			user := fs.String("user", "", "a person (their policies and relationships) instead of a thing")
			c, pos, err := setup(env, fs, args, 2)
			if err != nil {
				return err
			}
			body := map[string]any{"action": pos[0], "resource": pos[1], "thingName": *thing, "clientId": *clientID,
				"certificateFingerprint": *fp, "scopes": []string(scopes), "sourceIp": *ip}
			if *user != "" {
				body["username"] = *user
			}
			return c.print(ctx, "POST", "/api/v1/policies/simulate", nil, body)
		},
	})
}

func runAuthorizers(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "authorizers", args, map[string]func(context.Context, *Env, []string) error{
		"list": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "authorizers list", "authorizers list")
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			return c.print(ctx, "GET", "/api/v1/authorizers", nil, nil)
		},
		"get":    simpleGet("/api/v1/authorizers/"),
		"delete": simpleDelete("/api/v1/authorizers/"),
		"create": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "authorizers create", "authorizers create NAME --public-key public.pem [--key-name FIRST_KEY] [--token-key-name token] [--default]")
			pubFile, keyName := fs.String("public-key", "", "PEM public key that verifies token signatures"), fs.String("key-name", "FIRST_KEY", "name of the key")
			tokenKey := fs.String("token-key-name", "token", "header or query parameter carrying the token")
			def := fs.Bool("default", false, "use it when a request names no authorizer")
			noSig := fs.Bool("signing-disabled", false, "accept tokens without a signature")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			keys := map[string]string{}
			if *pubFile != "" {
				b, err := os.ReadFile(*pubFile)
				if err != nil {
					return err
				}
				keys[*keyName] = string(b)
			}
			return c.print(ctx, "POST", "/api/v1/authorizers", nil, map[string]any{"authorizerName": pos[0], "tokenKeyName": *tokenKey,
				"tokenSigningPublicKeys": keys, "default": *def, "signingDisabled": *noSig})
		},
	})
}

// runThingSecret sets a new client secret for a thing and prints it alone,
// for `SECRET=$(gatehouse things set-secret NAME)`.
func runThingSecret(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "things set-secret", "things set-secret NAME: generate a client secret (shown once)")
	c, pos, err := setup(env, fs, args, 1)
	if err != nil {
		return err
	}
	var out struct {
		ClientSecret string `json:"clientSecret"`
	}
	if err := c.do(ctx, "POST", "/api/v1/things/"+escape(pos[0])+"/secret", nil, nil, &out); err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, out.ClientSecret)
	return nil
}
