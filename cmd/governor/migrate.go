package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/governor-hq/governor/db"
)

func migrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply, revert or list database migrations (embedded in this binary)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "up",
		Short: "Apply every pending migration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := openDB(cmd)
			if err != nil {
				return err
			}
			defer pool.Close()
			done, err := db.MigrateUp(cmd.Context(), pool)
			for _, v := range done {
				fmt.Fprintf(cmd.OutOrStdout(), "applied %04d\n", v)
			}
			if err == nil && len(done) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "already up to date")
			}
			return err
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "down [steps]",
		Short: "Revert the latest migration, or the latest N",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			steps := 1
			if len(args) == 1 {
				n, err := strconv.Atoi(args[0])
				if err != nil || n < 1 {
					return fmt.Errorf("steps must be a positive number, not %q", args[0])
				}
				steps = n
			}
			pool, err := openDB(cmd)
			if err != nil {
				return err
			}
			defer pool.Close()
			done, err := db.MigrateDown(cmd.Context(), pool, steps)
			for _, v := range done {
				fmt.Fprintf(cmd.OutOrStdout(), "reverted %04d\n", v)
			}
			return err
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "List migrations and whether each is applied",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := openDB(cmd)
			if err != nil {
				return err
			}
			defer pool.Close()
			statuses, err := db.MigrationStatuses(cmd.Context(), pool)
			if err != nil {
				return err
			}
			for _, s := range statuses {
				state := "pending"
				if s.AppliedAt != nil {
					state = "applied " + s.AppliedAt.Format("2006-01-02 15:04:05 MST")
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%04d_%-30s %s\n", s.Version, s.Name, state)
			}
			return nil
		},
	})
	return cmd
}
