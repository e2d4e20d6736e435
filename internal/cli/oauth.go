package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/oauth/oauthload"
	"github.com/gatehouse-iot/gatehouse/thing"
)

// oauthFlags are the flags every OAuth client command shares.
type oauthFlags struct {
	server, clientID, clientSecret, scope string
}

func addOAuthFlags(fs interface {
	StringVar(p *string, name, value, usage string)
}, f *oauthFlags, defaultClient string) {
	fs.StringVar(&f.server, "server", "", "server URL (env GATEHOUSE_SERVER, default http://127.0.0.1:8080)")
	fs.StringVar(&f.clientID, "client-id", defaultClient, "OAuth client id: a thing name or a configured client (env GATEHOUSE_CLIENT_ID)")
	fs.StringVar(&f.clientSecret, "client-secret", "", "client secret (env GATEHOUSE_CLIENT_SECRET)")
	fs.StringVar(&f.scope, "scope", "", "scopes, comma or space separated (default: all the client may have)")
}

func (f *oauthFlags) resolve(env *Env) {
	if f.server == "" {
		f.server = env.Getenv("GATEHOUSE_SERVER")
	}
	if f.server == "" {
		f.server = "http://127.0.0.1:8080"
	}
	f.server = strings.TrimRight(f.server, "/")
	if v := env.Getenv("GATEHOUSE_CLIENT_ID"); v != "" && f.clientID == "" {
		f.clientID = v
	}
	if f.clientSecret == "" {
		f.clientSecret = env.Getenv("GATEHOUSE_CLIENT_SECRET")
	}
}

func (f *oauthFlags) scopes() []string { return strings.Fields(strings.ReplaceAll(f.scope, ",", " ")) }

func oauthContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: 30 * time.Second})
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func runToken(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "token", "token --client-id THING --client-secret SECRET [--scope publish] [--json]")
	var f oauthFlags
	addOAuthFlags(fs, &f, "")
	asJSON := fs.Bool("json", false, "print the whole token response instead of the access token")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	f.resolve(env)
	if f.clientID == "" || f.clientSecret == "" {
		return usagef("--client-id and --client-secret (or GATEHOUSE_CLIENT_ID/GATEHOUSE_CLIENT_SECRET) are required")
	}
	cfg := clientcredentials.Config{ClientID: f.clientID, ClientSecret: f.clientSecret, TokenURL: f.server + oauth.PathToken, Scopes: f.scopes()}
	tok, err := cfg.Token(oauthContext(ctx))
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.Stdout, map[string]any{"access_token": tok.AccessToken, "token_type": tok.TokenType, "expiry": tok.Expiry, "scope": tok.Extra("scope")})
	}
	_, err = fmt.Fprintln(env.Stdout, tok.AccessToken)
	return err
}

func runDeviceLogin(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "device-login", "device-login [--client-id gatehouse-cli] [--client-secret S] [--scope openid]")
	var f oauthFlags
	addOAuthFlags(fs, &f, oauth.DefaultCLIClient)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	f.resolve(env)
	// The device flow is the SDK's: a public client (the CLI) sends its
	// client id only; a confidential one (a thing) its secret as well, at
	// the device authorization endpoint too (RFC 8628 section 3.1).
	cfg := thing.Config{ServerURL: f.server, Name: f.clientID, Auth: thing.AuthNone, Scopes: f.scopes(),
		HTTPClient: &http.Client{Timeout: 30 * time.Second}}
	if f.clientSecret != "" {
		cfg.Auth, cfg.ClientSecret = thing.AuthClientSecretPost, f.clientSecret
	}
	client, err := thing.New(cfg)
	if err != nil {
		return err
	}
	tok, err := client.DeviceFlow(ctx, func(_ context.Context, dc thing.DeviceCode) error {
		fmt.Fprintf(env.Stderr, "To sign in, open %s\nand enter the code %s\n", dc.VerificationURI, dc.UserCode)
		if dc.VerificationURIComplete != "" {
			fmt.Fprintf(env.Stderr, "(or open %s)\n", dc.VerificationURIComplete)
		}
		_, err := fmt.Fprintln(env.Stderr, "Waiting for approval...")
		return err
	})
	if err != nil {
		return err
	}
	return printJSON(env.Stdout, map[string]any{"access_token": tok.AccessToken, "refresh_token": tok.RefreshToken, "token_type": tok.TokenType,
		"expiry": tok.Expiry, "scope": tok.Scope})
}

func runIntrospect(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "introspect", "introspect --client-id ID --client-secret SECRET TOKEN")
	var f oauthFlags
	addOAuthFlags(fs, &f, "")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return usagef("want the token to introspect")
	}
	f.resolve(env)
	if f.clientID == "" || f.clientSecret == "" {
		return usagef("introspection needs an authenticated client: --client-id and --client-secret")
	}
	req, err := http.NewRequestWithContext(ctx, "POST", f.server+oauth.PathIntrospect, strings.NewReader(url.Values{"token": {pos[0]}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(f.clientID), url.QueryEscape(f.clientSecret))
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("introspect: %s: %.200s", resp.Status, b)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("introspect: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return printJSON(env.Stdout, out)
}

func runTokenLoad(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "token-load", "dev token-load --client-id THING --client-secret SECRET [-c 16] [-d 10s] [--scope publish] [--raw]")
	var f oauthFlags
	addOAuthFlags(fs, &f, "")
	conns := fs.Int("c", 16, "concurrent keep-alive connections")
	dur := fs.Duration("d", 10*time.Second, "duration")
	raw := fs.Bool("raw", false, "minimal HTTP/1.1 client over TCP (http:// only): far cheaper per request than net/http, so the server is measured, not the client")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	f.resolve(env)
	if f.clientID == "" || f.clientSecret == "" {
		return usagef("--client-id and --client-secret are required")
	}
	res, err := oauthload.Run(ctx, oauthload.Config{TokenURL: f.server + oauth.PathToken, ClientID: f.clientID, ClientSecret: f.clientSecret,
		Scope: strings.Join(f.scopes(), " "), Concurrency: *conns, Duration: *dur, Raw: *raw})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(env.Stdout, res)
	return err
}
