package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Files `register` writes into --out, as reference devices keep them.
const (
	certFile   = "certificate.pem"
	keyFile    = "private.key"
	rootCAFile = "root-ca.pem"
)

// deviceServer returns the server URL of a device command (no admin token).
func deviceServer(env *Env, flagValue string) string {
	s := flagValue
	if s == "" {
		s = env.Getenv("GATEHOUSE_SERVER")
	}
	if s == "" {
		s = "http://127.0.0.1:8080"
	}
	return strings.TrimRight(s, "/")
}

// runRegister registers this machine as a device through POST /register.
func runRegister(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "register", "register --token DEVICE_TOKEN --thing NAME [--version V] [--csr FILE | --generate-key] [--out DIR]")
	server := fs.String("server", "", "server URL (env GATEHOUSE_SERVER, default http://127.0.0.1:8080)")
	token := fs.String("token", "", "registration token (env GATEHOUSE_DEVICE_TOKEN)")
	thing := fs.String("thing", "", "thing name to register")
	version := fs.String("version", "", "firmware or software version, stored as attribute")
	csrFile := fs.String("csr", "", "PEM CSR whose common name is the thing name; the key stays where it is")
	genKey := fs.Bool("generate-key", false, "generate an ECDSA P-256 key here and send only a CSR")
	out := fs.String("out", ".", "directory for "+certFile+", "+keyFile+" and "+rootCAFile)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *token == "" {
		*token = env.Getenv("GATEHOUSE_DEVICE_TOKEN")
	}
	switch {
	case *token == "":
		return usagef("no registration token: pass --token or set GATEHOUSE_DEVICE_TOKEN")
	case *thing == "":
		return usagef("--thing is required")
	case *csrFile != "" && *genKey:
		return usagef("--csr and --generate-key exclude each other")
	}
	body := map[string]string{"thingName": *thing, "version": *version}
	var keyPEM []byte
	switch {
	case *csrFile != "":
		b, err := os.ReadFile(*csrFile)
		if err != nil {
			return err
		}
		body["csr"] = string(b)
	case *genKey:
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: *thing}}, key)
		if err != nil {
			return err
		}
		body["csr"] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
		pk, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
	}
	payload, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, "POST", deviceServer(env, *server)+"/register", bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "DeviceToken "+*token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return fmt.Errorf("registration refused: %d %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), e.Error)
	}
	var got struct {
		CertificateData struct {
			PEM     string `json:"pem"`
			KeyPair struct {
				PrivateKey string `json:"private_key"`
			} `json:"key_pair"`
		} `json:"certificateData"`
		RootCA        string            `json:"rootCa"`
		CertificateID string            `json:"certificateId"`
		Endpoints     map[string]string `json:"endpoints"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		return fmt.Errorf("registration answer: %w", err)
	}
	if got.CertificateData.KeyPair.PrivateKey != "" {
		keyPEM = []byte(got.CertificateData.KeyPair.PrivateKey)
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{{certFile, []byte(got.CertificateData.PEM), 0o644}, {rootCAFile, []byte(got.RootCA), 0o644}}
	if keyPEM != nil {
		files = append(files, struct {
			name string
			data []byte
			mode os.FileMode
		}{keyFile, keyPEM, 0o600})
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(*out, f.name), f.data, f.mode); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "wrote %s\n", filepath.Join(*out, f.name))
	}
	summary, _ := json.MarshalIndent(map[string]any{"thingName": *thing, "certificateId": got.CertificateID, "endpoints": got.Endpoints}, "", "  ")
	fmt.Fprintf(env.Stdout, "%s\n", summary)
	return nil
}

// writeFileAtomic writes data to path with mode via a temporary file, so a
// key is never readable with a wider mode, not even briefly.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".gatehouse-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// runCA fetches or administers the CA.
func runCA(ctx context.Context, env *Env, args []string) error {
	fetch := func(path, what string) func(context.Context, *Env, []string) error {
		return func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "ca "+what, "ca "+what+" [--out FILE]")
			server := fs.String("server", "", "server URL (env GATEHOUSE_SERVER)")
			out := fs.String("out", "", "write to FILE instead of standard output")
			if _, err := parse(fs, args); err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(ctx, "GET", deviceServer(env, *server)+path, nil)
			if err != nil {
				return err
			}
			resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(data)))
			}
			if *out != "" {
				return writeFileAtomic(*out, data, 0o644)
			}
			_, err = env.Stdout.Write(data)
			return err
		}
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		args = append([]string{"get"}, args...)
	}
	return sub(ctx, env, "ca", args, map[string]func(context.Context, *Env, []string) error{
		"get": fetch("/ca", "get"),
		"crl": fetch("/crl?format=pem", "crl"),
		"info": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "ca info", "ca info")
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			return c.print(ctx, "GET", "/api/v1/ca", nil, nil)
		},
		"import": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "ca import", "ca import --chain FILE --key FILE [--root-key FILE] [--replace]")
			chain, key, rootKey := fs.String("chain", "", "issuing certificate then its issuers, PEM"), fs.String("key", "", "issuing key, PEM"), fs.String("root-key", "", "root key, PEM (better kept offline)")
			replace := fs.Bool("replace", false, "replace the existing CA (its certificates stop verifying)")
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			body := map[string]any{"replace": *replace}
			for field, file := range map[string]string{"chainPem": *chain, "keyPem": *key, "rootKeyPem": *rootKey} {
				if file == "" {
					continue
				}
				b, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				body[field] = string(b)
			}
			return c.print(ctx, "POST", "/api/v1/ca/import", nil, body)
		},
	})
}

// runCert administers device certificates.
func runCert(ctx context.Context, env *Env, args []string) error {
	action := func(verb string) func(context.Context, *Env, []string) error {
		return func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "cert "+verb, "cert "+verb+" CERTIFICATE_ID")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			return c.print(ctx, "POST", "/api/v1/certificates/"+escape(pos[0])+"/"+verb, nil, nil)
		}
	}
	return sub(ctx, env, "cert", args, map[string]func(context.Context, *Env, []string) error{
		"list": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "cert list", "cert list [--thing NAME] [--status S] [--ca NAME] [--all]")
			thing, status, ca := fs.String("thing", "", "only this thing's"), fs.String("status", "", "ACTIVE, INACTIVE, REVOKED or PENDING_ACTIVATION"), fs.String("ca", "", "gatehouse or a manufacturer CA")
			limit, after, all := listFlags(fs)
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			q := pageQuery(*limit, *after)
			for k, v := range map[string]string{"thingName": *thing, "status": *status, "ca": *ca} {
				if v != "" {
					q.Set(k, v)
				}
			}
			return listAll(ctx, c, "/api/v1/certificates", q, *all)
		},
		"show":       simpleGet("/api/v1/certificates/"),
		"activate":   action("activate"),
		"deactivate": action("deactivate"),
		"revoke": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "cert revoke", "cert revoke CERTIFICATE_ID [--reason N]")
			reason := fs.Int("reason", 0, "RFC 5280 reason: 0 unspecified, 1 keyCompromise, 4 superseded, 5 cessationOfOperation")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			return c.print(ctx, "POST", "/api/v1/certificates/"+escape(pos[0])+"/revoke", nil, map[string]int{"reason": *reason})
		},
		"rotate": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "cert rotate", "cert rotate CERTIFICATE_ID [--csr FILE] [--deactivate-old]")
			csr, deactivate := fs.String("csr", "", "PEM CSR for the new key (default: the server generates one)"), fs.Bool("deactivate-old", false, "make the old certificate INACTIVE")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			body := map[string]any{"deactivateOld": *deactivate}
			if *csr != "" {
				b, err := os.ReadFile(*csr)
				if err != nil {
					return err
				}
				body["csr"] = string(b)
			}
			return c.print(ctx, "POST", "/api/v1/certificates/"+escape(pos[0])+"/rotate", nil, body)
		},
	})
}

// runRegistrationTokens administers registration tokens.
func runRegistrationTokens(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "registration-tokens", args, map[string]func(context.Context, *Env, []string) error{
		"list": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "registration-tokens list", "registration-tokens list [--all]")
			limit, after, all := listFlags(fs)
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			return listAll(ctx, c, "/api/v1/registration-tokens", pageQuery(*limit, *after), *all)
		},
		"create": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "registration-tokens create", "registration-tokens create --thing-type T [--max-uses N] [--expires-in 720h] [--description D]")
			tt, desc := fs.String("thing-type", "", "thing type of registered things (required)"), fs.String("description", "", "what the token is for")
			maxUses := fs.Int64("max-uses", 1, "registrations allowed; -1 for unlimited (needs --expires-in)")
			expires := fs.Duration("expires-in", 0, "lifetime, e.g. 720h (default: none)")
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			if *tt == "" {
				return usagef("--thing-type is required")
			}
			return c.print(ctx, "POST", "/api/v1/registration-tokens", nil, map[string]any{"thingType": *tt, "description": *desc,
				"maxUses": *maxUses, "expiresInSeconds": int64(expires.Seconds())})
		},
		"revoke": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "registration-tokens revoke", "registration-tokens revoke ID")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			if err := c.do(ctx, "DELETE", "/api/v1/registration-tokens/"+escape(pos[0]), nil, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(env.Stderr, "revoked %s\n", pos[0])
			return nil
		},
	})
}

// runManufacturerCAs administers trusted manufacturer CAs.
func runManufacturerCAs(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "manufacturer-cas", args, map[string]func(context.Context, *Env, []string) error{
		"list": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "manufacturer-cas list", "manufacturer-cas list")
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			return c.print(ctx, "GET", "/api/v1/manufacturer-cas", nil, nil)
		},
		"show":   simpleGet("/api/v1/manufacturer-cas/"),
		"remove": simpleDelete("/api/v1/manufacturer-cas/"),
		"add": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "manufacturer-cas add", "manufacturer-cas add NAME --cert FILE [--verification-cert FILE] [--auto-register] [--jit-status ACTIVE|PENDING_ACTIVATION] [--thing-type T] [--template '${CommonName}'] [--allow-missing-eku]")
			cert, verif := fs.String("cert", "", "the CA certificate, PEM (required)"), fs.String("verification-cert", "", "proof of possession: a certificate signed by the CA with the registration code (gatehouse ca info) as common name")
			auto, missingEKU := fs.Bool("auto-register", false, "register unknown devices on first connection"), fs.Bool("allow-missing-eku", false, "accept device certificates without extended key usage")
			jit, tt, tmpl := fs.String("jit-status", "", "status of auto-registered certificates (default PENDING_ACTIVATION)"), fs.String("thing-type", "", "thing type of auto-registered things"), fs.String("template", "", "thing name template (default ${CommonName})")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			if *cert == "" {
				return usagef("--cert is required")
			}
			body := map[string]any{"name": pos[0], "autoRegister": *auto, "jitStatus": *jit, "thingType": *tt, "thingNameTemplate": *tmpl, "allowMissingEku": *missingEKU}
			for field, file := range map[string]string{"certificatePem": *cert, "verificationCertificatePem": *verif} {
				if file == "" {
					continue
				}
				b, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				body[field] = string(b)
			}
			return c.print(ctx, "POST", "/api/v1/manufacturer-cas", nil, body)
		},
	})
}
