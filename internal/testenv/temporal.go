package testenv

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/governor-hq/governor/internal/devstack"
	"github.com/governor-hq/governor/internal/lifecycle"
)

var temporalServer struct {
	once sync.Once
	srv  *devstack.Temporal
	addr string
	err  error
}

// TemporalAddress returns the address of a Temporal server for the package's tests:
// GOVERNOR_TEST_TEMPORAL_ADDRESS when set (make test starts one), else an in-memory dev
// server started for this package and stopped by Main.
func TemporalAddress(t testing.TB) string {
	t.Helper()
	temporalServer.once.Do(func() {
		if a := os.Getenv("GOVERNOR_TEST_TEMPORAL_ADDRESS"); a != "" {
			temporalServer.addr = a
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		temporalServer.srv, temporalServer.err = devstack.EnsureTemporal(ctx, devstack.TemporalOptions{
			Logf:                    func(format string, args ...any) { fmt.Fprintf(os.Stderr, "testenv: "+format+"\n", args...) },
			KeywordSearchAttributes: lifecycle.SearchAttributeNames(),
		})
		if temporalServer.err == nil {
			temporalServer.addr = temporalServer.srv.Address
		}
	})
	if temporalServer.err != nil {
		t.Fatalf("Temporal for tests (run `make test`, or set GOVERNOR_TEST_TEMPORAL_ADDRESS): %v", temporalServer.err)
	}
	return temporalServer.addr
}

// TemporalNamespace is the namespace tests use.
func TemporalNamespace() string {
	if ns := os.Getenv("TEMPORAL_NAMESPACE"); ns != "" {
		return ns
	}
	return "default"
}

func stopTemporal() {
	if temporalServer.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = temporalServer.srv.Stop(ctx)
	}
}
