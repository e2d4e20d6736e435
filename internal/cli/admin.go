package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// sub dispatches "RESOURCE VERB ..." to the verb's function.
func sub(ctx context.Context, env *Env, resource string, args []string, verbs map[string]func(context.Context, *Env, []string) error) error {
	var names []string
	for v := range verbs {
		names = append(names, v)
	}
	sort.Strings(names)
	if len(args) == 0 {
		return usagef("gatehouse %s <%s>", resource, strings.Join(names, "|"))
	}
	if isHelp(args[0]) {
		fmt.Fprintf(env.Stdout, "Usage: gatehouse %s <%s> [flags] [arguments]\n\nRun 'gatehouse %s VERB -h' for a verb's flags and arguments.\n",
			resource, strings.Join(names, "|"), resource)
		return nil
	}
	f, ok := verbs[args[0]]
	if !ok {
		return usagef("unknown verb %q: want one of %s", args[0], strings.Join(names, ", "))
	}
	env.command = resource + " " + args[0]
	return f(ctx, env, args[1:])
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// setup parses a client command's flags and wants exactly n positionals.
func setup(env *Env, fs *flag.FlagSet, args []string, n int) (*client, []string, error) {
	conn := clientFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if len(pos) != n {
		fs.Usage()
		return nil, nil, usagef("want %d argument(s), got %d", n, len(pos))
	}
	c, err := conn(env)
	return c, pos, err
}

// jsonFlag lets any create command take a whole JSON body instead of flags.
func jsonFlag(fs *flag.FlagSet) *string {
	return fs.String("json", "", "request body as JSON (or @file); overrides the other flags")
}

func readJSONFlag(v string) (json.RawMessage, error) {
	if strings.HasPrefix(v, "@") {
		b, err := os.ReadFile(v[1:])
		if err != nil {
			return nil, err
		}
		v = string(b)
	}
	if !json.Valid([]byte(v)) {
		return nil, usagef("--json is not valid JSON")
	}
	return json.RawMessage(v), nil
}

// listAll fetches a list, following ?after= pages when all is set.
func listAll(ctx context.Context, c *client, path string, q url.Values, all bool) error {
	var items []json.RawMessage
	for {
		var resp struct {
			Items []json.RawMessage `json:"items"`
			Next  string            `json:"next"`
		}
		if err := c.do(ctx, "GET", path+"?"+q.Encode(), nil, nil, &resp); err != nil {
			return err
		}
		items = append(items, resp.Items...)
		if !all || resp.Next == "" {
			break
		}
		q.Set("after", resp.Next)
	}
	if items == nil {
		items = []json.RawMessage{}
	}
	b, err := json.MarshalIndent(items, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "%s\n", b)
	return nil
}

func listFlags(fs *flag.FlagSet) (limit *int, after *string, all *bool) {
	return fs.Int("limit", 100, "page size"), fs.String("after", "", "start after this name"), fs.Bool("all", false, "follow every page")
}

func pageQuery(limit int, after string) url.Values {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if after != "" {
		q.Set("after", after)
	}
	return q
}

// simpleList serves the list verb of a resource paged by name.
func simpleList(resource, path string) func(context.Context, *Env, []string) error {
	return func(ctx context.Context, env *Env, args []string) error {
		fs := newFlagSet(env, resource+" list", resource+" list [--all]")
		limit, after, all := listFlags(fs)
		c, _, err := setup(env, fs, args, 0)
		if err != nil {
			return err
		}
		return listAll(ctx, c, path, pageQuery(*limit, *after), *all)
	}
}

// simpleGet and simpleDelete serve the get and delete verbs of a resource.
func simpleGet(path string) func(context.Context, *Env, []string) error {
	return func(ctx context.Context, env *Env, args []string) error {
		fs := newFlagSet(env, "get", "get NAME")
		c, pos, err := setup(env, fs, args, 1)
		if err != nil {
			return err
		}
		return c.print(ctx, "GET", path+escape(pos[0]), nil, nil)
	}
}

func simpleDelete(path string) func(context.Context, *Env, []string) error {
	return func(ctx context.Context, env *Env, args []string) error {
		fs := newFlagSet(env, "delete", "delete NAME [--if-match VERSION]")
		version := fs.Int64("if-match", 0, "only delete if the version is still this")
		c, pos, err := setup(env, fs, args, 1)
		if err != nil {
			return err
		}
		if err := c.do(ctx, "DELETE", path+escape(pos[0]), ifMatchHeader(*version), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "deleted %s\n", pos[0])
		return nil
	}
}

func parseAttrs(attrs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, a := range attrs {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, usagef("--attr %q: want name=value", a)
		}
		m[k] = v
	}
	return m, nil
}

// ---- things ----

func runThings(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "things", args, map[string]func(context.Context, *Env, []string) error{
		"list": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "things list", "things list [--type T] [--prefix P] [--attribute k=v] [--all]")
			typ, prefix, attr := fs.String("type", "", "only this thing type"), fs.String("prefix", "", "only names with this prefix"), fs.String("attribute", "", "only things with attribute name=value")
			limit, after, all := listFlags(fs)
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			q := pageQuery(*limit, *after)
			for k, v := range map[string]string{"thingType": *typ, "prefix": *prefix, "attribute": *attr} {
				if v != "" {
					q.Set(k, v)
				}
			}
			return listAll(ctx, c, "/api/v1/things", q, *all)
		},
		"get":        simpleGet("/api/v1/things/"),
		"delete":     simpleDelete("/api/v1/things/"),
		"set-secret": runThingSecret,
		"create": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "things create", "things create NAME [--type T] [--attr k=v]... [--disabled]")
			typ := fs.String("type", "", "thing type")
			var attrs multiFlag
			fs.Var(&attrs, "attr", "attribute name=value (repeatable)")
			disabled := fs.Bool("disabled", false, "create the thing disabled")
			raw := jsonFlag(fs)
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			if *raw != "" {
				body, err := readJSONFlag(*raw)
				if err != nil {
					return err
				}
				return c.print(ctx, "POST", "/api/v1/things", nil, body)
			}
			m, err := parseAttrs(attrs)
			if err != nil {
				return err
			}
			body := map[string]any{"name": pos[0], "attributes": m}
			if *typ != "" {
				body["thingType"] = *typ
			}
			if *disabled {
				body["state"] = "disabled"
			}
			return c.print(ctx, "POST", "/api/v1/things", nil, body)
		},
		"update": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "things update", "things update NAME [--type T] [--attr k=v]... [--remove-attr k]... [--state enabled|disabled] [--if-match V]")
			typ := fs.String("type", "", "new thing type (\"-\" removes it)")
			state := fs.String("state", "", "enabled or disabled")
			var attrs, remove multiFlag
			fs.Var(&attrs, "attr", "set attribute name=value (repeatable)")
			fs.Var(&remove, "remove-attr", "remove attribute (repeatable)")
			version := fs.Int64("if-match", 0, "only update if the version is still this")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			m, err := parseAttrs(attrs)
			if err != nil {
				return err
			}
			patch := map[string]any{}
			if len(m) > 0 || len(remove) > 0 {
				a := map[string]any{}
				for k, v := range m {
					a[k] = v
				}
				for _, k := range remove {
					a[k] = nil
				}
				patch["attributes"] = a
			}
			switch *typ {
			case "":
			case "-":
				patch["thingType"] = ""
			default:
				patch["thingType"] = *typ
			}
			if *state != "" {
				patch["state"] = *state
			}
			return c.print(ctx, "PATCH", "/api/v1/things/"+escape(pos[0]), ifMatchHeader(*version), patch)
		},
	})
}

// ---- thing types ----

func runThingTypes(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "thing-types", args, map[string]func(context.Context, *Env, []string) error{
		"list":   simpleList("thing-types", "/api/v1/thing-types"),
		"get":    simpleGet("/api/v1/thing-types/"),
		"delete": simpleDelete("/api/v1/thing-types/"),
		"create": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "thing-types create", "thing-types create NAME [--description D] [--scopes a,b] [--auth-methods m,n] [--default-policies p,q] [--approver-relation owner] [--key-algorithm rsa-2048] [--attribute name[:required][:pattern]]...")
			desc := fs.String("description", "", "description")
			scopes := fs.String("scopes", "", "comma-separated OAuth scopes things of this type may get")
			methods := fs.String("auth-methods", "", "comma-separated: client_secret, private_key_jwt, certificate, custom_authorizer, access_token")
			policies := fs.String("default-policies", "", "comma-separated policy names attached to things of this type")
			approver := fs.String("approver-relation", "", "relation recorded when a user approves a device login: owner, operator or viewer")
			keyAlg := fs.String("key-algorithm", "", "keys /register generates for these things: ecdsa-p256 (default), ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096")
			var schema multiFlag
			fs.Var(&schema, "attribute", "attribute schema entry name[:required][:pattern] (repeatable)")
			raw := jsonFlag(fs)
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			if *raw != "" {
				body, err := readJSONFlag(*raw)
				if err != nil {
					return err
				}
				return c.print(ctx, "POST", "/api/v1/thing-types", nil, body)
			}
			var specs []map[string]any
			for _, s := range schema {
				parts := strings.SplitN(s, ":", 3)
				spec := map[string]any{"name": parts[0]}
				if len(parts) > 1 && parts[1] == "required" {
					spec["required"] = true
				}
				if len(parts) > 2 {
					spec["pattern"] = parts[2]
				}
				specs = append(specs, spec)
			}
			body := map[string]any{"name": pos[0], "description": *desc, "scopes": splitList(*scopes),
				"authMethods": splitList(*methods), "defaultPolicies": splitList(*policies), "attributeSchema": specs, "approverRelation": *approver, "keyAlgorithm": *keyAlg}
			return c.print(ctx, "POST", "/api/v1/thing-types", nil, body)
		},
		"update": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "thing-types update", "thing-types update NAME --json '{...patch...}' [--if-match V]")
			raw := jsonFlag(fs)
			version := fs.Int64("if-match", 0, "only update if the version is still this")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			if *raw == "" {
				return usagef("--json is required")
			}
			body, err := readJSONFlag(*raw)
			if err != nil {
				return err
			}
			return c.print(ctx, "PATCH", "/api/v1/thing-types/"+escape(pos[0]), ifMatchHeader(*version), body)
		},
	})
}

// ---- users ----

// readPassword reads one line from stdin.
func readPassword(env *Env) (string, error) {
	line, err := bufio.NewReader(env.Stdin).ReadString('\n')
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("no password on standard input: %w", err)
	}
	return line, nil
}

func runUsers(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "users", args, map[string]func(context.Context, *Env, []string) error{
		"list":   simpleList("users", "/api/v1/users"),
		"get":    simpleGet("/api/v1/users/"),
		"delete": simpleDelete("/api/v1/users/"),
		"create": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "users create", "users create USERNAME [--password-stdin] [--role r]... [--email E] [--display-name N]")
			pwStdin := fs.Bool("password-stdin", false, "read the password from standard input")
			email, display := fs.String("email", "", "e-mail address"), fs.String("display-name", "", "display name")
			var roles multiFlag
			fs.Var(&roles, "role", "admin, operator or user (repeatable; default user)")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			body := map[string]any{"username": pos[0], "email": *email, "displayName": *display, "roles": []string(roles)}
			if *pwStdin {
				pw, err := readPassword(env)
				if err != nil {
					return err
				}
				body["password"] = pw
			}
			return c.print(ctx, "POST", "/api/v1/users", nil, body)
		},
		"update": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "users update", "users update USERNAME [--password-stdin] [--disable|--enable] [--role r]... [--email E] [--display-name N]")
			pwStdin := fs.Bool("password-stdin", false, "read a new password from standard input")
			disable, enable := fs.Bool("disable", false, "disable the account"), fs.Bool("enable", false, "enable the account")
			email, display := fs.String("email", "", "e-mail address"), fs.String("display-name", "", "display name")
			var roles multiFlag
			fs.Var(&roles, "role", "replace roles (repeatable)")
			version := fs.Int64("if-match", 0, "only update if the version is still this")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			patch := map[string]any{}
			if *pwStdin {
				pw, err := readPassword(env)
				if err != nil {
					return err
				}
				patch["password"] = pw
			}
			if *disable && *enable {
				return usagef("--disable and --enable contradict each other")
			}
			if *disable || *enable {
				patch["disabled"] = *disable
			}
			if *email != "" {
				patch["email"] = *email
			}
			if *display != "" {
				patch["displayName"] = *display
			}
			if len(roles) > 0 {
				patch["roles"] = []string(roles)
			}
			return c.print(ctx, "PATCH", "/api/v1/users/"+escape(pos[0]), ifMatchHeader(*version), patch)
		},
	})
}

// ---- groups ----

func runGroups(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "groups", args, map[string]func(context.Context, *Env, []string) error{
		"list":   simpleList("groups", "/api/v1/groups"),
		"get":    simpleGet("/api/v1/groups/"),
		"delete": simpleDelete("/api/v1/groups/"),
		"create": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "groups create", "groups create NAME [--description D]")
			desc := fs.String("description", "", "description")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			return c.print(ctx, "POST", "/api/v1/groups", nil, map[string]any{"name": pos[0], "description": *desc})
		},
		"members": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "groups members", "groups members GROUP")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			return c.print(ctx, "GET", "/api/v1/groups/"+escape(pos[0])+"/members", nil, nil)
		},
		"add-member": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "groups add-member", "groups add-member GROUP user|thing NAME")
			c, pos, err := setup(env, fs, args, 3)
			if err != nil {
				return err
			}
			return c.print(ctx, "POST", "/api/v1/groups/"+escape(pos[0])+"/members", nil, map[string]any{"kind": pos[1], "member": pos[2]})
		},
		"remove-member": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "groups remove-member", "groups remove-member GROUP user|thing NAME")
			c, pos, err := setup(env, fs, args, 3)
			if err != nil {
				return err
			}
			return c.do(ctx, "DELETE", "/api/v1/groups/"+escape(pos[0])+"/members/"+escape(pos[1])+"/"+escape(pos[2]), nil, nil, nil)
		},
	})
}

// ---- relationships ----

func runRelationships(ctx context.Context, env *Env, args []string) error {
	edge := func(pos []string) map[string]any {
		return map[string]any{"subjectKind": pos[0], "subject": pos[1], "relation": pos[2], "objectKind": pos[3], "object": pos[4]}
	}
	const edgeUsage = "SUBJECT_KIND SUBJECT RELATION OBJECT_KIND OBJECT, e.g. user alice owner thing pump-1"
	return sub(ctx, env, "relationships", args, map[string]func(context.Context, *Env, []string) error{
		"list": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "relationships list", "relationships list [--subject S] [--relation R] [--object O] ...")
			q := url.Values{}
			vals := map[string]*string{}
			for _, k := range []string{"subjectKind", "subject", "relation", "objectKind", "object"} {
				vals[k] = fs.String(k, "", "only edges with this "+k)
			}
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			for k, v := range vals {
				if *v != "" {
					q.Set(k, *v)
				}
			}
			return c.print(ctx, "GET", "/api/v1/relationships?"+q.Encode(), nil, nil)
		},
		"add": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "relationships add", "relationships add "+edgeUsage+" [--ttl 72h | --expires RFC3339]")
			ttl := fs.Duration("ttl", 0, "the relationship expires after this long")
			expires := fs.String("expires", "", "the relationship expires at this time (RFC 3339)")
			c, pos, err := setup(env, fs, args, 5)
			if err != nil {
				return err
			}
			body := edge(pos)
			switch {
			case *ttl != 0 && *expires != "":
				return usagef("give --ttl or --expires, not both")
			case *ttl < 0:
				return usagef("--ttl must be positive")
			case *ttl > 0:
				body["expiresAt"] = time.Now().Add(*ttl).UTC().Format(time.RFC3339Nano)
			case *expires != "":
				if _, err := time.Parse(time.RFC3339, *expires); err != nil {
					return usagef("--expires %q: want RFC 3339, e.g. 2026-12-31T18:00:00Z", *expires)
				}
				body["expiresAt"] = *expires
			}
			return c.print(ctx, "POST", "/api/v1/relationships", nil, body)
		},
		"remove": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "relationships remove", "relationships remove "+edgeUsage)
			c, pos, err := setup(env, fs, args, 5)
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range edge(pos) {
				q.Set(k, v.(string))
			}
			return c.do(ctx, "DELETE", "/api/v1/relationships?"+q.Encode(), nil, nil, nil)
		},
	})
}

// ---- events ----

type event struct {
	ID      int64           `json:"id"`
	Time    time.Time       `json:"time"`
	Type    string          `json:"type"`
	Subject string          `json:"subject"`
	Actor   string          `json:"actor"`
	Details json.RawMessage `json:"details"`
}

func runEvents(ctx context.Context, env *Env, args []string) error {
	filters := func(fs *flag.FlagSet) func() url.Values {
		typ, subject, actor := fs.String("type", "", "event type, or a prefix ending in '.' (thing.)"), fs.String("subject", "", "subject, e.g. thing/pump-1"), fs.String("actor", "", "actor")
		after := fs.Int64("after", 0, "only events after this id")
		return func() url.Values {
			q := url.Values{}
			for k, v := range map[string]string{"type": *typ, "subject": *subject, "actor": *actor} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if *after > 0 {
				q.Set("after", strconv.FormatInt(*after, 10))
			}
			return q
		}
	}
	return sub(ctx, env, "events", args, map[string]func(context.Context, *Env, []string) error{
		"prune": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "events prune", "events prune --before TIME|AGE: delete the events before an RFC 3339 time, or older than an age (2160h); the server also prunes by events.retention")
			before := fs.String("before", "", "RFC 3339 time (2026-01-31T00:00:00Z) or an age (720h)")
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			cut, err := parseBefore(*before, time.Now())
			if err != nil {
				return err
			}
			return c.print(ctx, "DELETE", "/api/v1/events?"+url.Values{"before": {cut.UTC().Format(time.RFC3339)}}.Encode(), nil, nil)
		},
		"list": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "events list", "events list [--type T] [--subject S] [--actor A] [--after ID] [--limit N]")
			q := filters(fs)
			limit := fs.Int("limit", 100, "at most this many")
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			v := q()
			v.Set("limit", strconv.Itoa(*limit))
			return c.print(ctx, "GET", "/api/v1/events?"+v.Encode(), nil, nil)
		},
		"tail": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "events tail", "events tail [--type T] [--subject S] [--actor A] [--after ID] [--json]: follow new events until interrupted")
			q := filters(fs)
			asJSON := fs.Bool("json", false, "print each event as one JSON line")
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			v := q()
			v.Set("wait", "30s")
			if v.Get("after") == "" {
				// Start at the newest event: find it, then follow.
				var resp struct {
					Items []event `json:"items"`
				}
				for after := int64(0); ; {
					p := url.Values{"after": {strconv.FormatInt(after, 10)}, "limit": {"1000"}}
					if err := c.do(ctx, "GET", "/api/v1/events?"+p.Encode(), nil, nil, &resp); err != nil {
						return err
					}
					if len(resp.Items) == 0 {
						v.Set("after", strconv.FormatInt(after, 10))
						break
					}
					after = resp.Items[len(resp.Items)-1].ID
				}
			}
			for {
				var resp struct {
					Items []event `json:"items"`
				}
				if err := c.do(ctx, "GET", "/api/v1/events?"+v.Encode(), nil, nil, &resp); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				for _, ev := range resp.Items {
					if *asJSON {
						b, _ := json.Marshal(ev)
						fmt.Fprintf(env.Stdout, "%s\n", b)
					} else {
						fmt.Fprintf(env.Stdout, "%d %s %-22s %-28s by %s %s\n", ev.ID, ev.Time.Format(time.RFC3339), ev.Type, ev.Subject, ev.Actor, ev.Details)
					}
					v.Set("after", strconv.FormatInt(ev.ID, 10))
				}
			}
		},
	})
}

// parseBefore reads --before: an RFC 3339 time, or an age back from now.
func parseBefore(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("--before is required (an RFC 3339 time, or an age such as 2160h)")
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("--before %q: want an RFC 3339 time or a positive age such as 2160h", s)
	}
	return now.Add(-d), nil
}

// ---- API tokens ----

func runAPITokens(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "api-tokens", args, map[string]func(context.Context, *Env, []string) error{
		"list": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "api-tokens list", "api-tokens list")
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			return c.print(ctx, "GET", "/api/v1/api-tokens", nil, nil)
		},
		"create": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "api-tokens create", "api-tokens create NAME [--role r]... [--user U] [--ttl 24h]")
			var roles multiFlag
			fs.Var(&roles, "role", "admin, operator or user (repeatable)")
			user, ttl := fs.String("user", "", "the user the token acts for"), fs.String("ttl", "", "lifetime, e.g. 720h (default: no expiry)")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			return c.print(ctx, "POST", "/api/v1/api-tokens", nil, map[string]any{"name": pos[0], "roles": []string(roles), "username": *user, "ttl": *ttl})
		},
		"revoke": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "api-tokens revoke", "api-tokens revoke ID")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			return c.do(ctx, "DELETE", "/api/v1/api-tokens/"+escape(pos[0]), nil, nil, nil)
		},
	})
}
