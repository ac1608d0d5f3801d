package api

import (
	c "github.com/governor-hq/governor/gen/governor/v1/governorv1connect"
	"github.com/governor-hq/governor/internal/authz"
)

// permissions says what each RPC needs. An RPC missing here is refused to everyone (a
// test checks every RPC of every service is listed).
var permissions = map[string]authz.Permission{
	c.AccountServiceGetOrganizationProcedure:    authz.Read,
	c.AccountServiceUpdateOrganizationProcedure: authz.Administer,
	c.AccountServiceCreateProjectProcedure:      authz.Administer,
	c.AccountServiceGetProjectProcedure:         authz.Read,
	c.AccountServiceListProjectsProcedure:       authz.Read,
	c.AccountServiceUpdateProjectProcedure:      authz.Administer,
	c.AccountServiceCreateAgentProcedure:        authz.Administer,
	c.AccountServiceGetAgentProcedure:           authz.Read,
	c.AccountServiceListAgentsProcedure:         authz.Read,
	c.AccountServiceUpdateAgentProcedure:        authz.Administer,
	c.AccountServiceCreateUserProcedure:         authz.Administer,
	c.AccountServiceGetUserProcedure:            authz.Read,
	c.AccountServiceListUsersProcedure:          authz.Read,
	c.AccountServiceUpdateUserProcedure:         authz.Administer,

	c.ApiKeyServiceCreateApiKeyProcedure:   authz.Administer,
	c.ApiKeyServiceGetApiKeyProcedure:      authz.Read,
	c.ApiKeyServiceListApiKeysProcedure:    authz.Read,
	c.ApiKeyServiceUpdateApiKeyProcedure:   authz.Administer,
	c.ApiKeyServiceFreezeApiKeyProcedure:   authz.Administer,
	c.ApiKeyServiceUnfreezeApiKeyProcedure: authz.Administer,
	c.ApiKeyServiceRevokeApiKeyProcedure:   authz.Administer,
	// Any user may rotate their own key; admins also ingest keys (the handler decides).
	c.ApiKeyServiceRotateApiKeyProcedure: authz.Read,

	c.AuditServiceListAuditEntriesProcedure: authz.Read,
	c.AuditServiceVerifyAuditChainProcedure: authz.Read,
	c.TimelineServiceListEventsProcedure:    authz.Read,
	c.TimelineServiceWatchEventsProcedure:   authz.Read,

	c.LimitServiceCreateLimitProcedure:        authz.Administer,
	c.LimitServiceGetLimitProcedure:           authz.Read,
	c.LimitServiceListLimitsProcedure:         authz.Read,
	c.LimitServiceUpdateLimitProcedure:        authz.Administer,
	c.LimitServiceDeleteLimitProcedure:        authz.Administer,
	c.LimitServiceGetEffectiveLimitsProcedure: authz.Read,
	c.LimitServiceCheckLimitsProcedure:        authz.CheckLimits,
	c.LimitServiceListModelPricesProcedure:    authz.Read,
	c.LimitServiceSetModelPriceProcedure:      authz.Administer,
	c.LimitServiceDeleteModelPriceProcedure:   authz.Administer,

	c.RunServiceAdmitRunProcedure:         authz.Ingest,
	c.RunServiceHeartbeatRunProcedure:     authz.Ingest,
	c.RunServiceCompleteRunProcedure:      authz.Ingest,
	c.RunServiceGetRunProcedure:           authz.Read,
	c.RunServiceListRunsProcedure:         authz.Read,
	c.RunServiceGetRunCostProcedure:       authz.Read,
	c.RunServiceListCostRecordsProcedure:  authz.Read,
	c.RunServiceListRunIncidentsProcedure: authz.Read,
	c.RunServiceRetrySettlementProcedure:  authz.Administer,
	// Calls and feedback are recorded by keys that may act for the run's agent (the
	// package checks which runs); feedback also by people of every role.
	c.RunServiceRecordLlmCallsProcedure: authz.Ingest,
	c.RunServiceRecordFeedbackProcedure: authz.Feedback,
	c.RunServiceGetRunLogsProcedure:     authz.Read,

	c.LogServiceListLlmCallsProcedure:      authz.Read,
	c.LogServiceListSystemRecordsProcedure: authz.Read,
	c.ExportServiceExportProcedure:         authz.Read,

	c.IncidentServiceListIncidentsProcedure:          authz.Read,
	c.IncidentServiceGetIncidentProcedure:            authz.Read,
	c.IncidentServiceAcknowledgeIncidentProcedure:    authz.Approve,
	c.IncidentServiceResolveIncidentProcedure:        authz.Approve,
	c.IncidentServiceGetIncidentSourceRunProcedure:   authz.Read,
	c.IncidentServiceListIncidentRunsProcedure:       authz.Read,
	c.IncidentServiceGetIncidentCostImpactProcedure:  authz.Read,
	c.IncidentServiceGetIncidentSettingsProcedure:    authz.Read,
	c.IncidentServiceUpdateIncidentSettingsProcedure: authz.Administer,
	c.IncidentServiceListIncidentLlmCallsProcedure:   authz.Read,

	c.PolicyServiceListProposalsProcedure:          authz.Read,
	c.PolicyServiceGetProposalProcedure:            authz.Read,
	c.PolicyServiceApproveProposalProcedure:        authz.Approve,
	c.PolicyServiceRejectProposalProcedure:         authz.Approve,
	c.PolicyServiceCreatePolicyRuleProcedure:       authz.Administer,
	c.PolicyServiceGetPolicyRuleProcedure:          authz.Read,
	c.PolicyServiceListPolicyRulesProcedure:        authz.Read,
	c.PolicyServiceDisablePolicyRuleProcedure:      authz.Administer,
	c.PolicyServiceGetPolicyEffectivenessProcedure: authz.Read,

	c.AlertServiceCreateChannelProcedure:        authz.Administer,
	c.AlertServiceGetChannelProcedure:           authz.Read,
	c.AlertServiceListChannelsProcedure:         authz.Read,
	c.AlertServiceUpdateChannelProcedure:        authz.Administer,
	c.AlertServiceDeleteChannelProcedure:        authz.Administer,
	c.AlertServiceRotateChannelSecretProcedure:  authz.Administer,
	c.AlertServiceTestChannelProcedure:          authz.Administer,
	c.AlertServiceCreateRouteProcedure:          authz.Administer,
	c.AlertServiceListRoutesProcedure:           authz.Read,
	c.AlertServiceUpdateRouteProcedure:          authz.Administer,
	c.AlertServiceDeleteRouteProcedure:          authz.Administer,
	c.AlertServiceListAlertsProcedure:           authz.Read,
	c.AlertServiceGetAlertProcedure:             authz.Read,
	c.AlertServiceListDeliveriesProcedure:       authz.Read,
	c.AlertServiceRedeliverAlertProcedure:       authz.Administer,
	c.AlertServiceListNotificationsProcedure:    authz.Read,
	c.AlertServiceMarkNotificationReadProcedure: authz.Read,
	c.AlertServiceWatchNotificationsProcedure:   authz.Read,

	c.AnomalyServiceListAnomaliesProcedure:            authz.Read,
	c.AnomalyServiceGetAnomalyProcedure:               authz.Read,
	c.AnomalyServiceGetAnomalyConfigProcedure:         authz.Read,
	c.AnomalyServiceUpdateAnomalyConfigProcedure:      authz.Administer,
	c.AnomalyServiceRunAnomalyDetectionProcedure:      authz.Administer,
	c.AnomalyServiceGetAnomalyDetectionRunProcedure:   authz.Read,
	c.AnomalyServiceListAnomalyDetectionRunsProcedure: authz.Read,

	// SignIn checks the key it is given; SignOut needs only the cookie it ends.
	c.SessionServiceSignInProcedure:                    publicPermission,
	c.SessionServiceSignOutProcedure:                   publicPermission,
	c.SessionServiceWhoAmIProcedure:                    authz.Read,
	c.AnalyticsServiceQueryUsageProcedure:              authz.Read,
	c.AnalyticsServiceGetOverviewProcedure:             authz.Read,
	c.AnalyticsServiceWatchOverviewProcedure:           authz.Read,
	c.AnalyticsServiceGetAnalyticsSettingsProcedure:    authz.Read,
	c.AnalyticsServiceUpdateAnalyticsSettingsProcedure: authz.Administer,
}

// Permissions returns what each RPC needs (a copy, for tests and documentation).
func Permissions() map[string]authz.Permission {
	out := make(map[string]authz.Permission, len(permissions))
	for k, v := range permissions {
		out[k] = v
	}
	return out
}
