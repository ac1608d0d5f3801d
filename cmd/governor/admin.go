package main

import (
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/governor-hq/governor/api"
	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/audit"
	"github.com/governor-hq/governor/internal/audit/checkpoint"
	"github.com/governor-hq/governor/internal/orgkeys"
)

func adminCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Operator commands that work on the database directly",
	}
	cmd.AddCommand(bootstrapCmd(), createUserKeyCmd(), verifyAuditCmd(), generateKEKCmd(), rotateKEKCmd(),
		auditCheckpointCmd(), generateAuditKeyCmd(), auditPublicKeyCmd())
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
	var orgID, checkpointFile, publicKey string
	cmd := &cobra.Command{
		Use:   "verify-audit [--checkpoint FILE [--public-key KEY]]",
		Short: "Check every organization's audit hash chain (or one with --org) and report the first broken link",
		Long: `verify-audit recomputes every entry's hash and link in the database and reports the
first break of each organization's chain.

That alone cannot expose someone who rewrote a whole chain and recomputed every hash. With
--checkpoint FILE (from governor admin audit-checkpoint, kept outside the database), it also
checks each checkpoint's Ed25519 signature with the public key (--public-key, else the one of
the configured GOVERNOR_AUDIT_SIGNING_KEY), and that the chain still holds the signed head:
entries 1 to its sequence all present and linked, each hashing (computed here, not by the
database's function) to its stored hash, the last one to the signed hash.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cps []checkpoint.Checkpoint
			var pub checkpoint.PublicKey
			if checkpointFile != "" {
				b, err := os.ReadFile(checkpointFile)
				if err != nil {
					return err
				}
				if cps, err = checkpoint.Unmarshal(b); err != nil {
					return err
				}
				if pub, err = verifyingKey(cmd, publicKey); err != nil {
					return err
				}
			} else if publicKey != "" {
				return fmt.Errorf("--public-key needs --checkpoint FILE")
			}
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
			if len(cps) == 0 {
				return nil
			}
			failed, checked := 0, 0
			for _, cp := range cps {
				if orgID != "" && cp.OrgID != orgID {
					continue
				}
				checked++
				if err := pub.Verify(cp); err != nil {
					failed++
					fmt.Fprintf(out, "%s  CHECKPOINT REFUSED at entry %d: %v\n", cp.OrgID, cp.Seq, err)
					continue
				}
				v, err := audit.VerifyCheckpoint(cmd.Context(), pool, cp)
				if err != nil {
					return fmt.Errorf("organization %s: %w", cp.OrgID, err)
				}
				if v.First != nil {
					failed++
					fmt.Fprintf(out, "%s  DOES NOT MATCH CHECKPOINT at entry %d %s: %s (%d entries check out before it)\n",
						cp.OrgID, v.First.Seq, v.First.EntryID, v.First.Reason, v.Checked)
					continue
				}
				fmt.Fprintf(out, "%s  matches checkpoint: entry %d %s signed %s by key %s\n", cp.OrgID, cp.Seq, v.HeadHash,
					cp.SignedAt.UTC().Format(time.RFC3339), cp.KeyID)
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d checkpoints do not hold", failed, checked)
			}
			if checked == 0 {
				return fmt.Errorf("the checkpoint file has no checkpoint of the organizations checked")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&orgID, "org", "", "only this organization")
	cmd.Flags().StringVar(&checkpointFile, "checkpoint", "", "also check the chains against this checkpoint file (governor admin audit-checkpoint)")
	cmd.Flags().StringVar(&publicKey, "public-key", "", "the key that signed the checkpoints (ed25519:…, from governor admin audit-public-key); default: the configured signing key's")
	return cmd
}

// verifyingKey is the --public-key given, else the configured signing key's public key.
func verifyingKey(cmd *cobra.Command, text string) (checkpoint.PublicKey, error) {
	if text != "" {
		return checkpoint.ParsePublicKey(text)
	}
	cfg, err := loadConfig(cmd)
	if err != nil {
		return checkpoint.PublicKey{}, err
	}
	s, ok, err := loadAuditSigner(cfg)
	if err != nil {
		return checkpoint.PublicKey{}, err
	}
	if !ok {
		return checkpoint.PublicKey{}, fmt.Errorf("give the checkpoints' public key with --public-key (or configure GOVERNOR_AUDIT_SIGNING_KEY / _FILE)")
	}
	return s.Public(), nil
}

func auditCheckpointCmd() *cobra.Command {
	var out, orgID, keyID string
	var sign bool
	cmd := &cobra.Command{
		Use:   "audit-checkpoint --out FILE",
		Short: "Write each organization's latest signed audit checkpoint to FILE, to keep outside the database",
		Long: `audit-checkpoint exports the newest checkpoint of each organization's audit chain (or one
with --org), as the workers signed them (GOVERNOR_AUDIT_CHECKPOINT_INTERVAL), to FILE. Keep it
where the database's owner cannot change it; governor admin verify-audit --checkpoint FILE
checks the chains against it later. With --sign, the current heads are signed first with the
configured GOVERNOR_AUDIT_SIGNING_KEY. Only checkpoints of the configured key (or --key-id)
are exported, so that one public key verifies the whole file.`,
		Args: cobra.NoArgs,
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
			s, ok, err := loadAuditSigner(cfg)
			if err != nil {
				return err
			}
			if ok && keyID == "" {
				keyID = s.Public().ID()
			}
			if sign {
				if !ok {
					return fmt.Errorf("--sign needs GOVERNOR_AUDIT_SIGNING_KEY or GOVERNOR_AUDIT_SIGNING_KEY_FILE")
				}
				n, err := audit.SignHeads(cmd.Context(), pool, s, time.Now())
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "signed %d new checkpoints with key %s\n", n, s.Public().ID())
			}
			cps, err := audit.LatestCheckpoints(cmd.Context(), pool, orgID, keyID)
			if err != nil {
				return err
			}
			if len(cps) == 0 {
				return fmt.Errorf("no checkpoint has been signed yet (does a worker run with an audit signing key?)")
			}
			b, err := checkpoint.Marshal(cps)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, b, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d checkpoints to %s\n", len(cps), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the file to write (required)")
	cmd.Flags().StringVar(&orgID, "org", "", "only this organization")
	cmd.Flags().BoolVar(&sign, "sign", false, "sign the current chain heads first (needs the signing key)")
	cmd.Flags().StringVar(&keyID, "key-id", "", "only checkpoints of this key (default: the configured signing key's, if any; else the newest of any key)")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func generateAuditKeyCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "generate-audit-key --out FILE",
		Short: "Write a new audit signing key to FILE (mode 0600), unless FILE exists, and print its public key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, made, err := ensureAuditKeyFile(out)
			if err != nil {
				return err
			}
			if made {
				fmt.Fprintf(cmd.OutOrStdout(), "wrote a new audit signing key to %s\n", out)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s exists and was kept\n", out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "public key %s (key id %s)\n", s.Public(), s.Public().ID())
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the key file to write (required)")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func auditPublicKeyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "audit-public-key",
		Short: "Print the public key of the configured audit signing key (for verify-audit --public-key)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			s, ok, err := loadAuditSigner(cfg)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("no audit signing key: set GOVERNOR_AUDIT_SIGNING_KEY or GOVERNOR_AUDIT_SIGNING_KEY_FILE")
			}
			fmt.Fprintln(cmd.OutOrStdout(), s.Public().String())
			return nil
		},
	}
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
