package main

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/governor-hq/governor/api"
	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/audit"
	"github.com/governor-hq/governor/internal/orgkeys"
)

func adminCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Operator commands that work on the database directly",
	}
	cmd.AddCommand(bootstrapCmd(), createUserKeyCmd(), verifyAuditCmd(), generateKEKCmd(), rotateKEKCmd())
	return cmd
}

func bootstrapCmd() *cobra.Command {
	var in api.BootstrapInput
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Create an organization, its first admin user and an admin API key (printed once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			pool, err := openCurrent(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer pool.Close()
			res, err := api.Bootstrap(cmd.Context(), pool, "cli:admin bootstrap", in)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "organization  %s (%s, time zone %s)\n", res.Organization.Id, res.Organization.Name, res.Organization.TimeZone)
			fmt.Fprintf(out, "admin user    %s (%s)\n", res.Admin.Id, res.Admin.Email)
			fmt.Fprintf(out, "admin API key %s (%s)\n\n", res.APIKey.Id, res.APIKey.Prefix)
			fmt.Fprintf(out, "Secret (shown once; store it now):\n\n    %s\n\n", res.Secret)
			fmt.Fprintf(out, "Try it:\n\n    buf curl --protocol connect --http2-prior-knowledge \\\n      -H 'Authorization: Bearer %s' \\\n      http://%s/governor.v1.AccountService/GetOrganization\n", res.Secret, cfg.HTTPAddr)
			return nil
		},
	}
	cmd.Flags().StringVar(&in.OrgName, "org", "", "organization name (required)")
	cmd.Flags().StringVar(&in.TimeZone, "time-zone", "UTC", "IANA time zone of the organization's calendar windows")
	cmd.Flags().StringVar(&in.AdminEmail, "email", "", "the first admin's email (required)")
	cmd.Flags().StringVar(&in.AdminName, "name", "", "the first admin's display name")
	_ = cmd.MarkFlagRequired("org")
	_ = cmd.MarkFlagRequired("email")
	return cmd
}

func createUserKeyCmd() *cobra.Command {
	var in api.IssueUserKeyInput
	var expiresIn time.Duration
	cmd := &cobra.Command{
		Use:   "create-user-key",
		Short: "Issue an API key to a user (printed once): how a user gets their key, since no API key may mint one that acts as another user",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			pool, err := openCurrent(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer pool.Close()
			if expiresIn > 0 {
				t := time.Now().Add(expiresIn)
				in.ExpiresAt = &t
			}
			k, secret, err := api.IssueUserKey(cmd.Context(), pool, "cli:admin create-user-key", in)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "API key %s (%s) for user %s, role %s\n\n", k.Id, k.Prefix, k.UserId, k.Role)
			fmt.Fprintf(out, "Secret (shown once; hand it to the user over a safe channel):\n\n    %s\n", secret)
			return nil
		},
	}
	cmd.Flags().StringVar(&in.OrgID, "org", "", "organization id (required)")
	cmd.Flags().StringVar(&in.UserID, "user", "", "user id (required)")
	cmd.Flags().StringVar(&in.Name, "name", "", "the key's name (default: key of <user>)")
	cmd.Flags().DurationVar(&expiresIn, "expires-in", 0, "the key expires after this long (e.g. 720h); 0: never")
	_ = cmd.MarkFlagRequired("org")
	_ = cmd.MarkFlagRequired("user")
	return cmd
}

func verifyAuditCmd() *cobra.Command {
	var orgID string
	cmd := &cobra.Command{
		Use:   "verify-audit",
		Short: "Check every organization's audit hash chain (or one with --org) and report the first broken link",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := openDB(cmd)
			if err != nil {
				return err
			}
			defer pool.Close()
			orgs := []string{orgID}
			if orgID == "" {
				all, err := dbsqlc.New().OrgList(cmd.Context(), pool)
				if err != nil {
					return err
				}
				orgs = orgs[:0]
				for _, o := range all {
					orgs = append(orgs, o.ID)
				}
			}
			broken := 0
			out := cmd.OutOrStdout()
			for _, id := range orgs {
				v, err := audit.Verify(cmd.Context(), pool, id)
				if err != nil {
					return fmt.Errorf("organization %s: %w", id, err)
				}
				if v.First == nil {
					fmt.Fprintf(out, "%s  intact: %d entries, head %d %s\n", id, v.Checked, v.HeadSeq, v.HeadHash)
					continue
				}
				broken++
				fmt.Fprintf(out, "%s  BROKEN at entry %d %s: %s (%d entries check out before it)\n", id, v.First.Seq, v.First.EntryID, v.First.Reason, v.Checked)
			}
			if broken > 0 {
				return fmt.Errorf("%d of %d audit chains are broken", broken, len(orgs))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&orgID, "org", "", "only this organization")
	return cmd
}

func generateKEKCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "generate-kek --out FILE",
		Short: "Write a new random key-encryption key to FILE (mode 0600), unless FILE exists (it is never replaced)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, made, err := ensureKEKFile(out)
			if err != nil {
				return err
			}
			if made {
				fmt.Fprintf(cmd.OutOrStdout(), "wrote a new key-encryption key %s to %s\n", k.ID(), out)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s exists and was kept: key-encryption key %s\n", out, k.ID())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the key file to write (required)")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func rotateKEKCmd() *cobra.Command {
	var newFile string
	cmd := &cobra.Command{
		Use:   "rotate-kek --new-kek-file FILE",
		Short: "Re-wrap every organization's data key under a new key-encryption key, in one transaction",
		Long: `rotate-kek unwraps every organization's data key with the current key-encryption key
(GOVERNOR_KEK or GOVERNOR_KEK_FILE, and any in GOVERNOR_KEK_ACCEPT_FILES) and wraps it again
with the one in FILE, in one transaction, with an audit entry per organization. Keys already
under the new KEK are left alone: running it again is harmless and finishes an interrupted
rotation. Secrets sealed with the data keys do not change.

Without downtime:
  1. add FILE to GOVERNOR_KEK_ACCEPT_FILES of every api and worker process, restart them;
  2. run governor admin rotate-kek --new-kek-file FILE;
  3. make FILE the GOVERNOR_KEK_FILE (the old key in GOVERNOR_KEK_ACCEPT_FILES), restart;
  4. once every process runs with it, drop the old key from GOVERNOR_KEK_ACCEPT_FILES.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			from, err := loadKeyring(cfg)
			if err != nil {
				return err
			}
			to, err := readKEKFile(newFile)
			if err != nil {
				return err
			}
			pool, err := openCurrent(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer pool.Close()
			var r orgkeys.Rotation
			err = pgx.BeginFunc(cmd.Context(), pool, func(tx pgx.Tx) error {
				r, err = orgkeys.Rotate(cmd.Context(), tx, from, to)
				return err
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "re-wrapped %d data keys under %s (%d were under it already)\n", len(r.Rewrapped), r.To, r.Already)
			// A process still wrapping with the old KEK may have made a key meanwhile.
			left, err := dbsqlc.New().OrgKeysNotUnder(cmd.Context(), pool, to.ID())
			if err != nil {
				return err
			}
			if left > 0 {
				return fmt.Errorf("%d data keys were made under another key-encryption key meanwhile: run rotate-kek again", left)
			}
			fmt.Fprintf(out, "Now make %s the GOVERNOR_KEK_FILE of every process (keep the old key in GOVERNOR_KEK_ACCEPT_FILES until all have restarted).\n", newFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&newFile, "new-kek-file", "", "file holding the new key-encryption key (base64 of 32 bytes; see generate-kek)")
	_ = cmd.MarkFlagRequired("new-kek-file")
	return cmd
}
