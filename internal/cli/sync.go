package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iot"

	"github.com/gatehouse-iot/gatehouse/internal/app"
	"github.com/gatehouse-iot/gatehouse/internal/awssync"
)

func runSync(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "sync", args, map[string]func(context.Context, *Env, []string) error{
		"aws-iot": runSyncAWSIoT,
	})
}

func runSyncAWSIoT(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "sync aws-iot", "sync aws-iot [--endpoint URL] [--region R] [--direction import|export|both] "+
		"[--prefer gatehouse|aws|newer] [--prune] [--dry-run] [--watch 30s] [--json] [--data-dir DIR | --dsn DSN | --config FILE]\n"+
		"Works on this Gatehouse's database directly (like backup) and talks to AWS IoT with credentials\n"+
		"from --access-key-id/--secret-access-key or the standard AWS chain (AWS_* variables, ~/.aws, --profile);\n"+
		"a half given as a flag takes the other from AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY.\n"+
		"--watch keeps syncing every interval until interrupted, as a connector does; a failed round is\n"+
		"reported and the next one runs.")
	load := serverFlags(fs)
	endpoint := fs.String("endpoint", "", "AWS IoT API endpoint, e.g. https://iot.eu-west-1.amazonaws.com or http://host:8080/aws-iot (default: AWS's for the region)")
	region := fs.String("region", "", "AWS region (default: from the AWS configuration, else us-east-1)")
	profile := fs.String("profile", "", "AWS shared configuration profile")
	keyID := fs.String("access-key-id", "", "AWS access key id (default: the AWS credential chain)")
	secret := fs.String("secret-access-key", "", "AWS secret access key (prefer the AWS_SECRET_ACCESS_KEY variable: flags show in ps)")
	direction := fs.String("direction", awssync.Both, "import (AWS to Gatehouse), export (Gatehouse to AWS) or both")
	prefer := fs.String("prefer", awssync.PreferNewer, "who wins a conflict (a change on both sides since the last sync): gatehouse, aws, or newer (report it and change nothing)")
	dry := fs.Bool("dry-run", false, "report what would change and change nothing")
	prune := fs.Bool("prune", false, "propagate deletions: a thing synced before and now missing on one side is deleted on the other, "+
		"unless that side changed since the last sync (a conflict, see --prefer); things never synced are never deleted")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	stateKey := fs.String("state-key", "", "name of the remote in the sync state (default aws-iot:<endpoint or region>)")
	watch := fs.Duration("watch", 0, "keep syncing: run again every interval (at least 1s) until interrupted; 0 runs once")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	// The secret belongs in the environment (flags show in ps): a key id
	// given as a flag takes its secret from there, and the other way round.
	if *keyID != "" && *secret == "" {
		*secret = env.Getenv("AWS_SECRET_ACCESS_KEY")
	}
	if *secret != "" && *keyID == "" {
		*keyID = env.Getenv("AWS_ACCESS_KEY_ID")
	}
	if (*keyID == "") != (*secret == "") {
		return usagef("--access-key-id needs a secret: --secret-access-key or AWS_SECRET_ACCESS_KEY (or give neither, for the AWS credential chain)")
	}
	if *watch != 0 && *watch < time.Second {
		return usagef("--watch %s: want at least 1s (or 0 to run once)", *watch)
	}
	switch *direction {
	case awssync.Import, awssync.Export, awssync.Both:
	default:
		return usagef("--direction %q: want import, export or both", *direction)
	}
	switch *prefer {
	case awssync.PreferGatehouse, awssync.PreferAWS, awssync.PreferNewer:
	default:
		return usagef("--prefer %q: want gatehouse, aws or newer", *prefer)
	}
	var opts []func(*awsconfig.LoadOptions) error
	if *region != "" {
		opts = append(opts, awsconfig.WithRegion(*region))
	}
	if *profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(*profile))
	}
	if *keyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(*keyID, *secret, "")))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return fmt.Errorf("AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := iot.NewFromConfig(awsCfg, func(o *iot.Options) {
		if *endpoint != "" {
			o.BaseEndpoint = aws.String(strings.TrimRight(*endpoint, "/"))
		}
	})
	source := *stateKey
	if source == "" {
		source = "aws-iot:" + awsCfg.Region
		if *endpoint != "" {
			source = "aws-iot:" + strings.TrimRight(*endpoint, "/")
		}
	}
	c, err := load(env)
	if err != nil {
		return err
	}
	off, err := app.NewOffline(ctx, c)
	if err != nil {
		return err
	}
	defer off.Close()
	s := &awssync.Syncer{Registry: off.Registry, Store: off.Store, Client: client}
	o := awssync.Options{Direction: *direction, Prefer: *prefer, DryRun: *dry, Prune: *prune, Source: source}
	if *watch == 0 {
		return syncOnce(ctx, env, s, o, *asJSON)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if err := syncOnce(ctx, env, s, o, *asJSON); err != nil && ctx.Err() == nil {
			fmt.Fprintf(env.Stderr, "sync aws-iot: %v (next round in %s)\n", err, *watch)
		}
		timer.Reset(*watch)
	}
}

// syncOnce runs one sync round and prints its report.
func syncOnce(ctx context.Context, env *Env, s *awssync.Syncer, o awssync.Options, asJSON bool) error {
	rep, err := s.Run(ctx, o)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := rep.WriteText(env.Stdout); err != nil {
		return err
	}
	if rep.Failed > 0 {
		return fmt.Errorf("%d item(s) failed; see the report", rep.Failed)
	}
	return nil
}

func runAWSKeys(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "aws-keys", args, map[string]func(context.Context, *Env, []string) error{
		"list": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "aws-keys list", "aws-keys list")
			c, _, err := setup(env, fs, args, 0)
			if err != nil {
				return err
			}
			return c.print(ctx, http.MethodGet, "/api/v1/aws-keys", nil, nil)
		},
		"create": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "aws-keys create", "aws-keys create NAME [--read-only]: the secret is printed once")
			readOnly := fs.Bool("read-only", false, "the key may only read (role operator); default read and write (admin)")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			roles := []string{"admin"}
			if *readOnly {
				roles = []string{"operator"}
			}
			return c.print(ctx, http.MethodPost, "/api/v1/aws-keys", nil, map[string]any{"name": pos[0], "roles": roles})
		},
		"revoke": func(ctx context.Context, env *Env, args []string) error {
			fs := newFlagSet(env, "aws-keys revoke", "aws-keys revoke ACCESS_KEY_ID")
			c, pos, err := setup(env, fs, args, 1)
			if err != nil {
				return err
			}
			return c.do(ctx, http.MethodDelete, "/api/v1/aws-keys/"+escape(pos[0]), nil, nil, nil)
		},
	})
}
