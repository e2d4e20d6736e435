package cli

import (
	"context"
	"net/http"
	"time"
)

func runAccessRequests(ctx context.Context, env *Env, args []string) error {
	decide := func(verb string) func(context.Context, *Env, []string) error {
		return func(ctx context.Context, env *Env, args []string) error {
			usage := "access-requests " + verb + " ID [--note N] [--version V]"
			if verb == "approve" {
				usage = "access-requests approve ID [--ttl 72h | --expires RFC3339] [--note N] [--version V]"
			}
			if verb == "cancel" {
				usage = "access-requests cancel ID [--version V]"
			}
			fs := newFlagSet(env, "access-requests "+verb, usage)
			note := fs.String("note", "", "a note recorded with the decision")
			version := fs.Int64("version", 0, "act only if the request is at this version")
			var ttl, expires *string
			if verb == "approve" {
				ttl = fs.String("ttl", "", "grant access for this long (e.g. 72h); default: no expiry")
				expires = fs.String("expires", "", "grant access until this time (RFC 3339)")
			}
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			body := map[string]any{}
			if *note != "" {
				if verb == "cancel" {
					return usagef("cancel takes no --note")
				}
				body["note"] = *note
			}
			if ttl != nil && *ttl != "" {
				body["ttl"] = *ttl
			}
			if expires != nil && *expires != "" {
				if _, err := time.Parse(time.RFC3339, *expires); err != nil {
					return usagef("--expires %q: want RFC 3339, e.g. 2026-12-31T18:00:00Z", *expires)
				}
				body["expiresAt"] = *expires
			}
			var b any
			if len(body) > 0 {
				b = body
			}
			return c.print(ctx, http.MethodPost, "/api/v1/access-requests/"+escape(pos[0])+"/"+verb, ifMatchHeader(*version), b)
		}
	}
	return sub(ctx, env, "access-requests", args, map[string]func(context.Context, *Env, []string) error{
		"list": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "access-requests list", "access-requests list [--state pending|approved|denied|cancelled|expired] [--thing T] [--requester U] [--all]")
			limit, after, all := listFlags(fs)
			state := fs.String("state", "", "only requests in this state")
			thing := fs.String("thing", "", "only requests for this thing")
			requester := fs.String("requester", "", "only requests by this user")
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			q := pageQuery(*limit, *after)
			for k, v := range map[string]string{"state": *state, "thing": *thing, "requester": *requester} {
				if v != "" {
					q.Set(k, v)
				}
			}
			return listAll(ctx, c, "/api/v1/access-requests", q, *all)
		},
		"get": simpleGet("/api/v1/access-requests/"),
		"create": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "access-requests create", "access-requests create THING --relation owner|operator|viewer --reason R [--for USER (admins)]")
			relation := fs.String("relation", "viewer", "relation asked for: owner, operator or viewer")
			reason := fs.String("reason", "", "why access is needed (required)")
			requester := fs.String("for", "", "request on behalf of this user (administrators only)")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			body := map[string]any{"thing": pos[0], "relation": *relation, "reason": *reason}
			if *requester != "" {
				body["requester"] = *requester
			}
			return c.print(ctx, http.MethodPost, "/api/v1/access-requests", nil, body)
		},
		"approve": decide("approve"),
		"deny":    decide("deny"),
		"cancel":  decide("cancel"),
	})
}
