package api_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/governor-hq/governor/api"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/audit"
	"github.com/governor-hq/governor/internal/envelope"
	"github.com/governor-hq/governor/internal/incidents"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/internal/runs"
	"github.com/governor-hq/governor/internal/testenv"
)

// systemBundle is an organization on a server that can seal channel credentials, and
// the pieces of the worker a test drives itself: the settler and the deliverer.
type systemBundle struct {
	ctx       context.Context
	pool      *pgxpool.Pool
	org       api.BootstrapResult
	admin     allClients
	ingest    allClients
	agentID   string
	settler   *runs.Settler
	deliverer *alerts.Deliverer
}

func setupSystem(t *testing.T) *systemBundle {
	t.Helper()
	ctx := context.Background()
	pool := testenv.DB(t)
	kek, err := envelope.ParseKEK(envelope.GenerateKEK())
	require.NoError(t, err)
	kr, err := envelope.NewKeyring(kek)
	require.NoError(t, err)
	loopback := alerts.EndpointPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, AllowHTTP: true}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srvCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	srv := api.New(pool, quietLogger(), api.Options{IdempotencyTTL: time.Hour, Keyring: kr, AlertEndpoints: loopback})
	go func() { done <- srv.Serve(srvCtx, ln, nil) }()
	t.Cleanup(func() { stop(); require.NoError(t, <-done) })
	url := "http://" + ln.Addr().String()
	h := &http.Client{Timeout: time.Minute}

	b := &systemBundle{ctx: ctx, pool: pool, org: bootstrap(t, pool, "System "+t.Name())}
	b.admin = newAllClients(h, url, b.org.Secret)
	prj, err := b.admin.accounts.CreateProject(ctx, req(&v1.CreateProjectRequest{Name: "p"}))
	require.NoError(t, err)
	agt, err := b.admin.accounts.CreateAgent(ctx, req(&v1.CreateAgentRequest{ProjectId: prj.Msg.Project.Id, Name: "a"}))
	require.NoError(t, err)
	b.agentID = agt.Msg.Agent.Id
	key, err := b.admin.keys.CreateApiKey(ctx, req(&v1.CreateApiKeyRequest{Name: "a", Kind: v1.ApiKeyKind_API_KEY_KIND_INGEST, AgentId: b.agentID}))
	require.NoError(t, err)
	b.ingest = newAllClients(h, url, key.Msg.Secret)
	// What the worker registers (workers.Run), driven by the test instead of Temporal.
	b.settler = runs.NewSettler(pool, incidents.OnRunSettled, alerts.OnRunSettled)
	b.settler.OnDeadLetter(alerts.OnSettlementDeadLettered)
	b.deliverer = alerts.NewDeliverer(pool, quietLogger(), alerts.DeliverOptions{Endpoints: loopback, Keyring: kr, Timeout: 5 * time.Second})
	return b
}

// failRun admits a run, reports it failed and settles it as its workflow's activity
// does, and returns the run and the workflow that settled it.
func (b *systemBundle) failRun(t *testing.T, code string) (runID, by string) {
	t.Helper()
	adm, err := b.ingest.runs.AdmitRun(b.ctx, req(&v1.AdmitRunRequest{AgentId: b.agentID, Estimate: &v1.Estimate{CostMicros: 100}}))
	require.NoError(t, err)
	runID = adm.Msg.Run.Id
	_, err = b.ingest.runs.CompleteRun(b.ctx, req(&v1.CompleteRunRequest{RunId: runID, Status: v1.RunStatus_RUN_STATUS_FAILED,
		CostMicros: ptr(int64(50)), ErrorCode: code, ErrorMessage: "upstream said no"}))
	require.NoError(t, err)
	return runID, "workflow:" + lifecycle.RunWorkflowID(runID)
}

// systemEntry finds the one audit entry of action about entityID, checks that the system
// acted as by, and returns the id of the transaction that wrote it.
func (b *systemBundle) systemEntry(t *testing.T, action, entityID, by string) (xid string, before, after string) {
	t.Helper()
	var kind, system string
	err := b.pool.QueryRow(b.ctx, `SELECT actor_kind, actor_system, xmin::text, coalesce(before::text, ''), coalesce(after::text, '')
		FROM audit_entries WHERE org_id = $1 AND action = $2 AND entity_id = $3`, b.org.Organization.Id, action, entityID).
		Scan(&kind, &system, &xid, &before, &after)
	require.NoErrorf(t, err, "the %s of %s is on the ledger", action, entityID)
	require.Equal(t, "system", kind, action)
	require.Equal(t, by, system, action)
	return xid, before, after
}

// rowXid is the transaction that last wrote a row.
func (b *systemBundle) rowXid(t *testing.T, table, id string) string {
	t.Helper()
	var x string
	require.NoError(t, b.pool.QueryRow(b.ctx, fmt.Sprintf(`SELECT xmin::text FROM %s WHERE id = $1`, table), id).Scan(&x))
	return x
}

func (b *systemBundle) requireChainIntact(t *testing.T) {
	t.Helper()
	v, err := audit.Verify(b.ctx, b.pool, b.org.Organization.Id)
	require.NoError(t, err)
	require.Nil(t, v.First, "%+v", v.First)
}

// refuseAudit makes the database refuse this organization's audit entries of one action,
// so a change that is not written with its entry shows.
func (b *systemBundle) refuseAudit(t *testing.T, action string) {
	t.Helper()
	fn := "refuse_" + strings.ReplaceAll(action, ".", "_") + "_" + b.org.Organization.Id
	_, err := b.pool.Exec(b.ctx, fmt.Sprintf(`
CREATE FUNCTION %[1]s() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'injected audit failure'; END $$;
CREATE TRIGGER %[1]s BEFORE INSERT ON audit_entries FOR EACH ROW
WHEN (NEW.org_id = '%[2]s' AND NEW.action = '%[3]s') EXECUTE FUNCTION %[1]s();`, fn, b.org.Organization.Id, action))
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = b.pool.Exec(context.Background(), fmt.Sprintf("DROP TRIGGER %[1]s ON audit_entries; DROP FUNCTION %[1]s();", fn))
	})
}

// A failed run's settlement opens an incident, and a later one escalates it: both on the
// ledger with the settling workflow as actor, in the settlement's transaction. The
// proposal the incident workflow makes, its reminder and its expiry are too.
func TestSystemIncidentChangesAreAudited(t *testing.T) {
	t.Parallel()
	b := setupSystem(t)
	cur, err := b.admin.incidents.GetIncidentSettings(b.ctx, req(&v1.GetIncidentSettingsRequest{}))
	require.NoError(t, err)
	s := cur.Msg.Settings
	s.HighOccurrences, s.CriticalOccurrences, s.OccurrenceWindowMinutes = 2, 1000, 60
	_, err = b.admin.incidents.UpdateIncidentSettings(b.ctx, req(&v1.UpdateIncidentSettingsRequest{Settings: s}))
	require.NoError(t, err)

	run1, by1 := b.failRun(t, "UPSTREAM")
	_, err = b.settler.Settle(b.ctx, run1, by1)
	require.NoError(t, err)
	incs, err := b.admin.runs.ListRunIncidents(b.ctx, req(&v1.ListRunIncidentsRequest{RunId: run1}))
	require.NoError(t, err)
	require.Len(t, incs.Msg.Incidents, 1)
	inc := incs.Msg.Incidents[0]
	xid, _, after := b.systemEntry(t, "incident.open", inc.Id, by1)
	require.Equal(t, b.rowXid(t, "incidents", inc.Id), xid, "the incident and its entry were committed together")
	require.Contains(t, after, `"severity": "INCIDENT_SEVERITY_LOW"`)
	var settledIn string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT xmin::text FROM runs WHERE id = $1`, run1).Scan(&settledIn))
	require.Equal(t, settledIn, xid, "in the settlement's own transaction")

	run2, by2 := b.failRun(t, "UPSTREAM")
	_, err = b.settler.Settle(b.ctx, run2, by2)
	require.NoError(t, err)
	xid, before, after := b.systemEntry(t, "incident.escalate", inc.Id, by2)
	require.Equal(t, b.rowXid(t, "incidents", inc.Id), xid)
	require.JSONEq(t, `{"severity": "low"}`, before)
	require.Contains(t, after, `"severity": "INCIDENT_SEVERITY_HIGH"`)

	wf := "workflow:" + lifecycle.IncidentWorkflowID(inc.Fingerprint)
	p, err := incidents.Propose(b.ctx, b.pool, inc.Id, wf)
	require.NoError(t, err)
	xid, _, _ = b.systemEntry(t, "policy_proposal.create", p.ID, wf)
	require.Equal(t, b.rowXid(t, "policy_proposals", p.ID), xid)
	_, err = incidents.Remind(b.ctx, b.pool, p.ID, wf)
	require.NoError(t, err)
	xid, _, _ = b.systemEntry(t, "policy_proposal.remind", p.ID, wf)
	require.Equal(t, b.rowXid(t, "policy_proposals", p.ID), xid)
	_, err = incidents.Remind(b.ctx, b.pool, p.ID, wf) // once only: no second entry
	require.NoError(t, err)
	_, err = incidents.Expire(b.ctx, b.pool, p.ID, wf)
	require.NoError(t, err)
	xid, _, _ = b.systemEntry(t, "policy_proposal.expire", p.ID, wf)
	require.Equal(t, b.rowXid(t, "policy_proposals", p.ID), xid)

	// A settlement that could not give up on its retries is dead-lettered, audited alike.
	adm, err := b.ingest.runs.AdmitRun(b.ctx, req(&v1.AdmitRunRequest{AgentId: b.agentID, Estimate: &v1.Estimate{CostMicros: 100}}))
	require.NoError(t, err)
	dead := adm.Msg.Run.Id
	_, _, err = b.settler.DeadLetter(b.ctx, dead, "workflow:"+lifecycle.RunWorkflowID(dead), "cannot settle")
	require.NoError(t, err)
	xid, _, _ = b.systemEntry(t, "run.settlement_dead_lettered", dead, "workflow:"+lifecycle.RunWorkflowID(dead))
	require.Equal(t, b.rowXid(t, "runs", dead), xid)
	b.requireChainIntact(t)
}

// If the incident's audit entry cannot be written, the settlement that would open it
// does not commit: no incident, no settled run (the workflow retries the settlement).
func TestIncidentIsNotOpenedWithoutItsAuditEntry(t *testing.T) {
	t.Parallel()
	b := setupSystem(t)
	b.refuseAudit(t, "incident.open")
	run, by := b.failRun(t, "UPSTREAM")
	_, err := b.settler.Settle(b.ctx, run, by)
	require.ErrorContains(t, err, "injected audit failure")
	incs, err := b.admin.incidents.ListIncidents(b.ctx, req(&v1.ListIncidentsRequest{}))
	require.NoError(t, err)
	require.Empty(t, incs.Msg.Incidents)
	r, err := b.admin.runs.GetRun(b.ctx, req(&v1.GetRunRequest{Id: run}))
	require.NoError(t, err)
	require.Nil(t, r.Msg.Run.SettleTime, "the settlement rolled back with the incident")
}

// A channel failing for longer than its disable_after is disabled by the delivery that
// finds it so: on the ledger with that delivery's workflow as actor, in the transaction
// that disabled it; if the entry cannot be written, the channel stays enabled.
func TestChannelAutoDisableIsAudited(t *testing.T) {
	t.Parallel()
	for _, refused := range []bool{false, true} {
		t.Run(fmt.Sprintf("audit refused %v", refused), func(t *testing.T) {
			t.Parallel()
			b := setupSystem(t)
			// A port nothing listens on: every attempt is refused.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			dead := "http://" + ln.Addr().String() + "/hook"
			require.NoError(t, ln.Close())
			ch, err := b.admin.alerts.CreateChannel(b.ctx, req(&v1.CreateChannelRequest{Name: "flaky", Type: v1.ChannelType_CHANNEL_TYPE_WEBHOOK,
				Url: dead, DisableAfter: durationpb.New(time.Second)}))
			require.NoError(t, err)
			chID := ch.Msg.Channel.Id
			test, err := b.admin.alerts.TestChannel(b.ctx, req(&v1.TestChannelRequest{Id: chID}))
			require.NoError(t, err)
			del := test.Msg.Delivery
			if refused {
				b.refuseAudit(t, "alert_channel.disable")
			}
			// The delivery workflow's attempts, until one finds the channel failing for
			// longer than a second.
			var lastErr error
			require.Eventually(t, func() bool {
				_, lastErr = b.deliverer.Attempt(b.ctx, del.Id)
				if refused {
					return lastErr != nil && strings.Contains(lastErr.Error(), "injected audit failure")
				}
				got, err := b.admin.alerts.GetChannel(b.ctx, req(&v1.GetChannelRequest{Id: chID}))
				return err == nil && !got.Msg.Channel.Enabled
			}, 60*time.Second, 200*time.Millisecond, "last attempt: %v", lastErr)
			got, err := b.admin.alerts.GetChannel(b.ctx, req(&v1.GetChannelRequest{Id: chID}))
			require.NoError(t, err)
			if refused {
				require.True(t, got.Msg.Channel.Enabled, "not disabled without its audit entry")
				return
			}
			require.NotEmpty(t, del.WorkflowId)
			xid, before, after := b.systemEntry(t, "alert_channel.disable", chID, "workflow:"+del.WorkflowId)
			require.Equal(t, b.rowXid(t, "alert_channels", chID), xid)
			require.Contains(t, before, `"enabled": true`)
			require.Contains(t, after, `"enabled": false`)
			require.NotContains(t, after, strings.TrimPrefix(dead, "http://"), "no endpoint (a credential) on the ledger")
			b.requireChainIntact(t)
		})
	}
}
