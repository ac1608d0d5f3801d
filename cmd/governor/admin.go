package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/governor-hq/governor/api"
	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/audit"
)

func adminCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Operator commands that work on the database directly",
	}
	cmd.AddCommand(bootstrapCmd(), createUserKeyCmd(), verifyAuditCmd())
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
