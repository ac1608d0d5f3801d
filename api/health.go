package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"connectrpc.com/connect"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The gRPC health checking protocol (grpc.health.v1.Health), served through Connect so
// grpc_health_probe, grpcurl and Kubernetes gRPC probes work. The server is SERVING while
// PostgreSQL answers.
const (
	healthCheckProcedure = "/grpc.health.v1.Health/Check"
	healthWatchProcedure = "/grpc.health.v1.Health/Watch"
	healthListProcedure  = "/grpc.health.v1.Health/List"
	healthServiceName    = "grpc.health.v1.Health"
)

func (s *Server) healthStatus(ctx context.Context, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	if service != "" && !s.knownService(service) {
		return 0, connect.NewError(connect.CodeNotFound, errors.New("unknown service "+service))
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		return healthpb.HealthCheckResponse_NOT_SERVING, nil
	}
	return healthpb.HealthCheckResponse_SERVING, nil
}

func (s *Server) healthHandlers(mux *http.ServeMux) {
	mux.Handle(healthCheckProcedure, connect.NewUnaryHandler(healthCheckProcedure,
		func(ctx context.Context, req *connect.Request[healthpb.HealthCheckRequest]) (*connect.Response[healthpb.HealthCheckResponse], error) {
			st, err := s.healthStatus(ctx, req.Msg.GetService())
			if err != nil {
				return nil, err
			}
			return connect.NewResponse(&healthpb.HealthCheckResponse{Status: st}), nil
		}))
	mux.Handle(healthListProcedure, connect.NewUnaryHandler(healthListProcedure,
		func(ctx context.Context, _ *connect.Request[healthpb.HealthListRequest]) (*connect.Response[healthpb.HealthListResponse], error) {
			st, err := s.healthStatus(ctx, "")
			if err != nil {
				return nil, err
			}
			out := &healthpb.HealthListResponse{Statuses: map[string]*healthpb.HealthCheckResponse{"": {Status: st}}}
			for _, name := range s.names {
				out.Statuses[name] = &healthpb.HealthCheckResponse{Status: st}
			}
			return connect.NewResponse(out), nil
		}))
	mux.Handle(healthWatchProcedure, connect.NewServerStreamHandler(healthWatchProcedure,
		func(ctx context.Context, req *connect.Request[healthpb.HealthCheckRequest], stream *connect.ServerStream[healthpb.HealthCheckResponse]) error {
			var last healthpb.HealthCheckResponse_ServingStatus = -1
			ticker := time.NewTicker(5 * time.Second)
			defer ticker.Stop()
			for {
				st, err := s.healthStatus(ctx, req.Msg.GetService())
				if err != nil {
					return err
				}
				if st != last {
					if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
						return err
					}
					last = st
				}
				select {
				case <-ctx.Done():
					return nil
				case <-ticker.C:
				}
			}
		}))
}
