package cli

import (
	"context"
)

// runApps manages registered OAuth apps: clients that are not things,
// such as the console or a mobile app, that people sign in to with the
// authorization code flow (PKCE) or, when enabled, the password grant.
func runApps(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "apps", args, map[string]func(context.Context, *Env, []string) error{
		"list": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "apps list", "apps list")
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			return c.print(ctx, "GET", "/api/v1/apps", nil, nil)
		},
		"create": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "apps create", "apps create NAME [--public] [--redirect-uri URI]... [--scope S]... [--grant G]... [--description D]\n"+
				"The client id is app.NAME; a confidential app's secret is printed once.")
			var uris, scopes, grants multiFlag
			fs.Var(&uris, "redirect-uri", "an allowed redirect URI, matched exactly (repeatable)")
			fs.Var(&scopes, "scope", "a scope the app may ask for (repeatable; default openid, offline_access)")
			fs.Var(&grants, "grant", "authorization_code, refresh_token, password, client_credentials (repeatable; default authorization_code, refresh_token)")
			public := fs.Bool("public", false, "no client secret (browser or mobile app); PKCE S256 is then required")
			desc := fs.String("description", "", "what the app is")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			return c.print(ctx, "POST", "/api/v1/apps", nil, map[string]any{"name": pos[0], "public": *public, "description": *desc,
				"redirectUris": []string(uris), "scopes": []string(scopes), "grantTypes": []string(grants)})
		},
		"get": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "apps get", "apps get CLIENT_ID")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			return c.print(ctx, "GET", "/api/v1/apps/"+escape(pos[0]), nil, nil)
		},
		"delete": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "apps delete", "apps delete CLIENT_ID")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			return c.do(ctx, "DELETE", "/api/v1/apps/"+escape(pos[0]), nil, nil, nil)
		},
	})
}
