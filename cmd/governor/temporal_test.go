package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/governor-hq/governor/internal/config"
)

// pki is a throwaway CA with a server certificate for "temporal.test" and a client
// certificate for "governor-worker", written as PEM files.
type pki struct {
	dir                       string
	caFile, certFile, keyFile string
	serverCert                tls.Certificate
	caPool                    *x509.CertPool
	otherCAFile               string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	p := pki{dir: dir}
	ca, caKey := selfSigned(t, "test CA")
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(ca)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw)
	other, _ := selfSigned(t, "another CA")
	p.otherCAFile = writePEM(t, dir, "other-ca.pem", "CERTIFICATE", other.Raw)

	srvDER, srvKey := issue(t, ca, caKey, "temporal.test", x509.ExtKeyUsageServerAuth)
	p.serverCert = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	cliDER, cliKey := issue(t, ca, caKey, "governor-worker", x509.ExtKeyUsageClientAuth)
	p.certFile = writePEM(t, dir, "client.pem", "CERTIFICATE", cliDER)
	keyDER, err := x509.MarshalECPrivateKey(cliKey)
	require.NoError(t, err)
	p.keyFile = writePEM(t, dir, "client-key.pem", "EC PRIVATE KEY", keyDER)
	return p
}

func selfSigned(t *testing.T, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert, key
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	return der, key
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
	return p
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestTemporalOptionsBuildTLSAndCredentials(t *testing.T) {
	t.Parallel()
	p := newPKI(t)

	plain, err := temporalOptions(config.Config{TemporalAddress: "temporal:7233", TemporalNamespace: "prod"}, quiet())
	require.NoError(t, err)
	require.Equal(t, "temporal:7233", plain.HostPort)
	require.Equal(t, "prod", plain.Namespace)
	require.Nil(t, plain.ConnectionOptions.TLS, "no TLS unless configured")
	require.Nil(t, plain.Credentials)

	defaults, err := temporalOptions(config.Config{}, quiet())
	require.NoError(t, err)
	require.Equal(t, defaultTemporalAddress, defaults.HostPort)

	sec := config.Security{TemporalTLS: true, TemporalTLSCAFile: p.caFile, TemporalTLSCertFile: p.certFile,
		TemporalTLSKeyFile: p.keyFile, TemporalTLSServerName: "temporal.test", TemporalAPIKey: "tmprl-key"}
	mtls, err := temporalOptions(config.Config{Security: sec}, quiet())
	require.NoError(t, err)
	tc := mtls.ConnectionOptions.TLS
	require.NotNil(t, tc)
	require.Equal(t, "temporal.test", tc.ServerName)
	require.True(t, tc.RootCAs.Equal(p.caPool), "the configured CA, not the system roots")
	require.Len(t, tc.Certificates, 1, "the client certificate")
	leaf, err := x509.ParseCertificate(tc.Certificates[0].Certificate[0])
	require.NoError(t, err)
	require.Equal(t, "governor-worker", leaf.Subject.CommonName)
	require.GreaterOrEqual(t, tc.MinVersion, uint16(tls.VersionTLS12))
	require.NotNil(t, mtls.Credentials, "the API key")

	system, err := temporalOptions(config.Config{Security: config.Security{TemporalTLS: true}}, quiet())
	require.NoError(t, err)
	require.NotNil(t, system.ConnectionOptions.TLS)
	require.Nil(t, system.ConnectionOptions.TLS.RootCAs, "the system's roots")
	require.Empty(t, system.ConnectionOptions.TLS.Certificates)

	for name, s := range map[string]config.Security{
		"missing CA file": {TemporalTLS: true, TemporalTLSCAFile: filepath.Join(p.dir, "nope.pem")},
		"CA file not PEM": {TemporalTLS: true, TemporalTLSCAFile: p.keyFile + ".txt"},
		"key of another":  {TemporalTLS: true, TemporalTLSCertFile: p.certFile, TemporalTLSKeyFile: p.caFile},
	} {
		if name == "CA file not PEM" {
			require.NoError(t, os.WriteFile(s.TemporalTLSCAFile, []byte("not a certificate"), 0o600))
		}
		_, err := temporalOptions(config.Config{Security: s}, quiet())
		require.Error(t, err, name)
		require.Contains(t, err.Error(), "TEMPORAL_TLS_", name)
	}
}

// fakeFrontend is a Temporal frontend that only answers GetSystemInfo (what Dial calls)
// and remembers who called.
type fakeFrontend struct {
	workflowservice.UnimplementedWorkflowServiceServer
	mu         sync.Mutex
	calls      int
	auth       []string
	clientCert string
}

func (f *fakeFrontend) GetSystemInfo(ctx context.Context, _ *workflowservice.GetSystemInfoRequest) (*workflowservice.GetSystemInfoResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	md, _ := metadata.FromIncomingContext(ctx)
	f.auth = md.Get("authorization")
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			f.clientCert = ti.State.PeerCertificates[0].Subject.CommonName
		}
	}
	return &workflowservice.GetSystemInfoResponse{Capabilities: &workflowservice.GetSystemInfoResponse_Capabilities{}}, nil
}

// The options really reach the frontend: a server that demands a client certificate from
// its CA accepts the configured client, sees its certificate and API key, and refuses a
// client without the certificate or trusting another CA.
func TestTemporalClientSpeaksMutualTLSWithAnAPIKey(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	front := &fakeFrontend{}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{p.serverCert}, ClientCAs: p.caPool, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS12,
	})))
	workflowservice.RegisterWorkflowServiceServer(srv, front)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		require.NoError(t, <-served)
	})

	dial := func(s config.Security) error {
		opts, err := temporalOptions(config.Config{TemporalAddress: ln.Addr().String(), Security: s}, quiet())
		require.NoError(t, err)
		opts.ConnectionOptions.GetSystemInfoTimeout = 5 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := client.DialContext(ctx, opts)
		if err == nil {
			c.Close()
		}
		return err
	}
	good := config.Security{TemporalTLS: true, TemporalTLSCAFile: p.caFile, TemporalTLSCertFile: p.certFile,
		TemporalTLSKeyFile: p.keyFile, TemporalTLSServerName: "temporal.test", TemporalAPIKey: "tmprl-key"}
	require.NoError(t, dial(good))
	front.mu.Lock()
	require.Equal(t, []string{"Bearer tmprl-key"}, front.auth)
	require.Equal(t, "governor-worker", front.clientCert)
	front.mu.Unlock()

	noCert := good
	noCert.TemporalTLSCertFile, noCert.TemporalTLSKeyFile = "", ""
	// With TLS 1.3 the refusal reaches the client as an alert or a broken pipe, depending
	// on timing; what matters is that no call got through.
	require.Error(t, dial(noCert), "the frontend demands a client certificate")
	wrongCA := good
	wrongCA.TemporalTLSCAFile = p.otherCAFile
	require.Error(t, dial(wrongCA), "the client does not trust a frontend its CA did not sign")
	wrongName := good
	wrongName.TemporalTLSServerName = "elsewhere.test"
	require.Error(t, dial(wrongName), "the frontend's certificate must name the expected server")
	front.mu.Lock()
	require.Equal(t, 1, front.calls, "only the fully configured client reached the frontend")
	front.mu.Unlock()
}
