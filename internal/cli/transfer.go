package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

func runRegistry(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "registry", args, map[string]func(context.Context, *Env, []string) error{
		"export": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "registry export", "registry export [--format json|csv] [--out FILE]: things with types and attributes, thing types, users (no secrets), groups, relationships")
			format := fs.String("format", "json", "json or csv")
			out := fs.String("out", "", "file to write (default standard output); must not exist")
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			if *format != "json" && *format != "csv" {
				return usagef("--format %q: want json or csv", *format)
			}
			body, err := c.raw(ctx, http.MethodGet, "/api/v1/registry/export?format="+*format, "", nil)
			if err != nil {
				return err
			}
			if *out == "" {
				_, err = env.Stdout.Write(body)
				return err
			}
			f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			if _, err := f.Write(body); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(env.Stderr, "exported the registry to %s (%d bytes)\n", *out, len(body))
			return nil
		},
		"import": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "registry import", "registry import [--format json|csv] [--dry-run] [--json] FILE (- for standard input): "+
				"creates what is missing, updates what differs, all or nothing")
			format := fs.String("format", "", "json or csv (default: from the file name, else json)")
			dry := fs.Bool("dry-run", false, "check every row and report what would change, changing nothing")
			asJSON := fs.Bool("json", false, "print the report as JSON")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			if *format == "" {
				*format = "json"
				if strings.HasSuffix(strings.ToLower(pos[0]), ".csv") {
					*format = "csv"
				}
			}
			if *format != "json" && *format != "csv" {
				return usagef("--format %q: want json or csv", *format)
			}
			var data []byte
			if pos[0] == "-" {
				data, err = io.ReadAll(env.Stdin)
			} else {
				data, err = os.ReadFile(pos[0])
			}
			if err != nil {
				return err
			}
			ct := "application/json"
			if *format == "csv" {
				ct = "text/csv"
			}
			q := url.Values{"format": {*format}, "dryRun": {fmt.Sprint(*dry)}}
			body, err := c.raw(ctx, http.MethodPost, "/api/v1/registry/import?"+q.Encode(), ct, data)
			if err != nil {
				return err
			}
			if *asJSON {
				_, err = env.Stdout.Write(body)
				return err
			}
			var rep struct {
				Message string `json:"message"`
				Items   []struct {
					Row, Kind, Name, Action string
				} `json:"items"`
			}
			if err := json.Unmarshal(body, &rep); err != nil {
				return err
			}
			for _, it := range rep.Items {
				fmt.Fprintf(env.Stdout, "  %-8s %-12s %-10s %s\n", it.Action, it.Row, it.Kind, it.Name)
			}
			fmt.Fprintln(env.Stdout, rep.Message)
			return nil
		},
	})
}

// raw sends body as is and returns the answer's body unparsed.
func (c *client) raw(ctx context.Context, method, path, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		e := &apiError{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
		if json.Unmarshal(data, e) != nil || e.Detail == "" {
			e.Detail = strings.TrimSpace(string(data))
		}
		return nil, e
	}
	return data, nil
}
