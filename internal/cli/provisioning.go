package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

const templatesPath = "/api/v1/provisioning-templates"

func runProvisioningTemplates(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "provisioning-templates", args, map[string]func(context.Context, *Env, []string) error{
		"list":   simpleList("provisioning-templates", templatesPath),
		"get":    simpleGet(templatesPath + "/"),
		"delete": simpleDelete(templatesPath + "/"),
		"create": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "provisioning-templates create", "provisioning-templates create NAME FILE|-|'{json}' [--enabled] [--description D] [--pre-provisioning-hook URL]")
			desc, hook := fs.String("description", "", "description"), fs.String("pre-provisioning-hook", "", "https URL asked before each provisioning")
			enabled := fs.Bool("enabled", false, "devices may provision with it at once")
			c, pos, err := setup(env, fs, args, 2)
			if err != nil {
				return err
			}
			body, err := readDocument(env, pos[1])
			if err != nil {
				return err
			}
			return c.print(ctx, "POST", templatesPath, nil, map[string]any{"templateName": pos[0], "description": *desc, "templateBody": body,
				"enabled": *enabled, "preProvisioningHook": *hook})
		},
		"update": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "provisioning-templates update", "provisioning-templates update NAME [--enabled=true|false] [--description D] [--pre-provisioning-hook URL] [--default-version N]")
			desc, hook := fs.String("description", "", "description"), fs.String("pre-provisioning-hook", "", "https URL asked before each provisioning (\"\" removes it)")
			enabled := fs.String("enabled", "", "true or false")
			def := fs.Int64("default-version", 0, "the version in force")
			version := fs.Int64("if-match", 0, "only update if the version is still this")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			patch := map[string]any{}
			fs.Visit(func(f *flag.Flag) {
				switch f.Name {
				case "description":
					patch["description"] = *desc
				case "pre-provisioning-hook":
					patch["preProvisioningHook"] = *hook
				case "default-version":
					patch["defaultVersionId"] = *def
				}
			})
			if *enabled != "" {
				b, err := strconv.ParseBool(*enabled)
				if err != nil {
					return usagef("--enabled: want true or false")
				}
				patch["enabled"] = b
			}
			return c.print(ctx, "PATCH", templatesPath+"/"+escape(pos[0]), ifMatchHeader(*version), patch)
		},
		"versions": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "provisioning-templates versions", "provisioning-templates versions NAME")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			return c.print(ctx, "GET", templatesPath+"/"+escape(pos[0])+"/versions", nil, nil)
		},
		"add-version": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "provisioning-templates add-version", "provisioning-templates add-version NAME FILE|-|'{json}' [--default]")
			def := fs.Bool("default", false, "make the new version the one in force")
			c, pos, err := setup(env, fs, args, 2)
			if err != nil {
				return err
			}
			body, err := readDocument(env, pos[1])
			if err != nil {
				return err
			}
			return c.print(ctx, "POST", templatesPath+"/"+escape(pos[0])+"/versions", nil, map[string]any{"templateBody": body, "setAsDefault": *def})
		},
		"claim-certificate": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "provisioning-templates claim-certificate",
				"provisioning-templates claim-certificate NAME [--validity 5m] [--out DIR]: mint a temporary claim certificate that may only provision with template NAME (trusted-user flow)")
			validity := fs.Duration("validity", 5*time.Minute, "how long the claim certificate lasts")
			out := fs.String("out", "", "write claim.pem.crt and claim.private.key (0600) to DIR instead of printing JSON")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			body := map[string]any{"validitySeconds": int64(validity.Seconds())}
			path := templatesPath + "/" + escape(pos[0]) + "/claim-certificates"
			if *out == "" {
				return c.print(ctx, "POST", path, nil, body)
			}
			var claim struct {
				CertificateID  string            `json:"certificateId"`
				CertificatePEM string            `json:"certificatePem"`
				KeyPair        map[string]string `json:"keyPair"`
				Expiration     time.Time         `json:"expiration"`
			}
			if err := c.do(ctx, "POST", path, nil, body, &claim); err != nil {
				return err
			}
			if err := os.MkdirAll(*out, 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(*out, "claim.pem.crt"), []byte(claim.CertificatePEM), 0o600); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(*out, "claim.private.key"), []byte(claim.KeyPair["PrivateKey"]), 0o600); err != nil {
				return err
			}
			b, _ := json.Marshal(map[string]any{"certificateId": claim.CertificateID, "expiration": claim.Expiration})
			fmt.Fprintln(env.Stdout, string(b))
			return nil
		},
	})
}
