package events

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
)

// Channel is the PostgreSQL notification channel the domain_events trigger notifies on,
// with the payload "<org id> <seq>".
const Channel = "governor_events"

// Hub delivers newly committed events to the live watchers of one process. It holds one
// connection LISTENing, reads each notified event once and fans it out, so a thousand
// watchers cost one query per event, not a thousand.
type Hub struct {
	pool *pgxpool.Pool
	log  *slog.Logger

	mu   sync.Mutex
	subs map[string]map[*Subscription]struct{} // by organization

	// ready is closed once the hub first LISTENs.
	ready     chan struct{}
	readyOnce sync.Once
}

// NewHub returns a hub; call Run to start it.
func NewHub(pool *pgxpool.Pool, log *slog.Logger) *Hub {
	return &Hub{pool: pool, log: log, subs: map[string]map[*Subscription]struct{}{}, ready: make(chan struct{})}
}

// Ready is closed once the hub is LISTENing. A notification is only heard by connections
// already listening when it is sent, so a server must not tell a watcher it is live
// before this: an event committed in between would never reach it.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Subscription receives the events of one organization as they commit.
type Subscription struct {
	hub *Hub
	org string
	// C carries new events. Events arrive in commit order, which may differ from sequence
	// order.
	C chan dbsqlc.DomainEvent
	// Resync is signalled when events may have been missed (the watcher fell behind, or
	// the hub's connection dropped): the watcher should re-read from the database.
	Resync chan struct{}
}

const subscriptionBuffer = 1024

// Subscribe starts delivering the organization's new events. Close it when done.
func (h *Hub) Subscribe(orgID string) *Subscription {
	s := &Subscription{hub: h, org: orgID, C: make(chan dbsqlc.DomainEvent, subscriptionBuffer), Resync: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[orgID] == nil {
		h.subs[orgID] = map[*Subscription]struct{}{}
	}
	h.subs[orgID][s] = struct{}{}
	return s
}

// Close stops the subscription.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	delete(s.hub.subs[s.org], s)
	if len(s.hub.subs[s.org]) == 0 {
		delete(s.hub.subs, s.org)
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (h *Hub) subscribers(orgID string) []*Subscription {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Subscription, 0, len(h.subs[orgID]))
	for s := range h.subs[orgID] {
		out = append(out, s)
	}
	return out
}

func (h *Hub) resyncAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, subs := range h.subs {
		for s := range subs {
			signal(s.Resync)
		}
	}
}

// Run listens until ctx ends, reconnecting after errors.
func (h *Hub) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := h.listen(ctx, func() {
			// Notifications sent before this connection listened are lost to it, on the
			// first connection too: whoever subscribed before then re-reads from the last
			// event it has.
			h.resyncAll()
			h.readyOnce.Do(func() { close(h.ready) })
			backoff = 100 * time.Millisecond
		})
		if ctx.Err() != nil {
			return
		}
		h.log.Warn("event hub connection lost; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (h *Hub) listen(ctx context.Context, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, h.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	connected()
	q := dbsqlc.New()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		org, seqText, ok := strings.Cut(n.Payload, " ")
		if !ok {
			continue
		}
		subs := h.subscribers(org)
		if len(subs) == 0 {
			continue
		}
		seq, err := strconv.ParseInt(seqText, 10, 64)
		if err != nil {
			continue
		}
		ev, err := q.EventGet(ctx, h.pool, seq)
		if err != nil {
			h.log.Warn("event hub could not read a notified event", "seq", seq, "err", err)
			for _, s := range subs {
				signal(s.Resync)
			}
			continue
		}
		for _, s := range subs {
			select {
			case s.C <- ev:
			default:
				signal(s.Resync) // the watcher is behind: it will re-read
			}
		}
	}
}
