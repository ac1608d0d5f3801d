package events_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/api"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Generous: the machine may be busy with other test packages.
const patience = 60 * time.Second

func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newOrg(t *testing.T) string {
	t.Helper()
	res, err := api.Bootstrap(context.Background(), testenv.DB(t), "test:bootstrap", api.BootstrapInput{
		OrgName: t.Name(), TimeZone: "UTC", AdminEmail: "admin@example.com"})
	require.NoError(t, err)
	return res.Organization.Id
}

func emit(t *testing.T, org, summary string) events.Written {
	t.Helper()
	var w events.Written
	require.NoError(t, pgx.BeginFunc(context.Background(), testenv.DB(t), func(tx pgx.Tx) error {
		var err error
		w, err = events.Emit(context.Background(), tx, events.Event{OrgID: org, Domain: events.DomainAccounts, Type: "test_event",
			Entity: events.Ref{Type: "test", ID: summary}, Summary: summary, Actor: actor.System("test")})
		return err
	}))
	return w
}

func runHub(t *testing.T, h *events.Hub) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// Ready closes only once the hub listens; from then on every committed event of an
// organization reaches its subscribers.
func TestHubIsReadyOnceListeningAndDeliversCommittedEvents(t *testing.T) {
	t.Parallel()
	org := newOrg(t)
	h := events.NewHub(testenv.DB(t), quiet())
	select {
	case <-h.Ready():
		t.Fatal("ready before it ever ran")
	default:
	}
	runHub(t, h)
	select {
	case <-h.Ready():
	case <-time.After(patience):
		t.Fatal("the hub never became ready")
	}
	sub := h.Subscribe(org)
	defer sub.Close()
	w := emit(t, org, "after ready")
	select {
	case ev := <-sub.C:
		require.Equal(t, w.Seq, ev.Seq)
		require.Equal(t, "after ready", ev.Summary)
	case <-time.After(patience):
		t.Fatal("an event committed after Ready never arrived")
	}
}

// A subscriber that was there before the hub's first LISTEN may have missed events
// committed meanwhile (their notifications went to nobody): the first connection, like
// every reconnection, tells it to re-read.
func TestHubResyncsSubscribersOnItsFirstConnection(t *testing.T) {
	t.Parallel()
	org := newOrg(t)
	h := events.NewHub(testenv.DB(t), quiet())
	sub := h.Subscribe(org)
	defer sub.Close()
	emit(t, org, "before listen") // notified to no one: the hub does not listen yet
	runHub(t, h)
	select {
	case <-sub.Resync:
	case ev := <-sub.C:
		t.Fatalf("a notification sent before LISTEN cannot arrive, got %d", ev.Seq)
	case <-time.After(patience):
		t.Fatal("no resync on the first connection: the event committed before LISTEN is lost to this subscriber")
	}
}
