// Package devstack starts or reuses the dependencies Governor needs on a developer machine
// and in CI: a PostgreSQL server and a Temporal dev server.
//
// Nothing here is used in production. The rules, in order:
//
//   - PostgreSQL: a URL the user gave (DATABASE_URL) is used as is; else a server answering
//     on 127.0.0.1:5432 is reused; else a private cluster is created under a data directory
//     (initdb/pg_ctl, installed with apt-get when missing) and run as a non-root user.
//   - Temporal: an address the user gave (TEMPORAL_ADDRESS) is used as is; else
//     `temporal server start-dev` is started on free loopback ports in its own process group
//     and stopped with it.
//
// Everything listens on 127.0.0.1 only.
package devstack

// Logf receives progress messages (what is being reused, started, installed). Nil is allowed.
type Logf func(format string, args ...any)

func (l Logf) printf(format string, args ...any) {
	if l != nil {
		l(format, args...)
	}
}
