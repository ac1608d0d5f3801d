package netguard_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/internal/netguard"
)

func TestAllowed(t *testing.T) {
	t.Parallel()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	office := []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}
	cases := []struct {
		ip    string
		allow []netip.Prefix
		ok    bool
		why   string // a part of the reason, when refused
	}{
		// Public addresses.
		{"93.184.215.14", nil, true, ""},
		{"8.8.8.8", nil, true, ""},
		{"203.0.113.10", nil, true, ""},
		{"2606:4700::6810:84e5", nil, true, ""},
		{"2a00:1450:4001:81c::200e", nil, true, ""},
		// Loopback, in every spelling.
		{"127.0.0.1", nil, false, "loopback"},
		{"127.255.255.254", nil, false, "loopback"},
		{"::1", nil, false, "loopback"},
		{"::ffff:127.0.0.1", nil, false, "loopback"},
		{"::127.0.0.1", nil, false, "loopback"}, // v4-compatible
		{"64:ff9b::7f00:1", nil, false, "loopback"},
		{"2002:7f00:1::1", nil, false, "loopback"}, // 6to4 of 127.0.0.1
		// Private, CGNAT, link-local and metadata.
		{"10.0.0.1", nil, false, "private"},
		{"172.16.0.1", nil, false, "private"},
		{"172.31.255.255", nil, false, "private"},
		{"172.32.0.1", nil, true, ""},
		{"192.168.1.1", nil, false, "private"},
		{"::ffff:10.0.0.1", nil, false, "private"},
		{"::ffff:192.168.0.1", nil, false, "private"},
		{"100.64.0.1", nil, false, "carrier-grade"},
		{"100.127.255.255", nil, false, "carrier-grade"},
		{"100.128.0.1", nil, true, ""},
		{"169.254.169.254", nil, false, "link-local"},
		{"::ffff:169.254.169.254", nil, false, "link-local"},
		{"fe80::1", nil, false, "link-local"},
		{"fe80::1%eth0", nil, false, "link-local"},
		{"fc00::1", nil, false, "unique-local"},
		{"fd12:3456:789a::1", nil, false, "unique-local"},
		{"fec0::1", nil, false, "site-local"},
		// Unspecified, multicast, broadcast, reserved.
		{"0.0.0.0", nil, false, "unspecified"},
		{"0.1.2.3", nil, false, "unspecified"},
		{"::", nil, false, "unspecified"},
		{"::ffff:0.0.0.0", nil, false, "unspecified"},
		{"224.0.0.1", nil, false, "multicast"},
		{"239.255.255.250", nil, false, "multicast"},
		{"ff02::1", nil, false, "multicast"},
		{"255.255.255.255", nil, false, "broadcast"},
		{"240.0.0.1", nil, false, "reserved"},
		{"198.18.0.1", nil, false, "benchmarking"},
		{"192.0.0.8", nil, false, "IETF"},
		{"100::1", nil, false, "discard"},
		{"64:ff9b:1::1", nil, false, "NAT64"},
		// The allowlist lets chosen targets through, and only those.
		{"127.0.0.1", loopback, true, ""},
		{"::1", loopback, true, ""},
		{"::ffff:127.0.0.1", loopback, true, ""},
		{"10.0.0.1", loopback, false, "private"},
		{"10.20.3.4", office, true, ""},
		{"10.21.0.1", office, false, "private"},
		{"169.254.169.254", office, false, "link-local"},
	}
	for _, c := range cases {
		ok, why := netguard.Allowed(netip.MustParseAddr(c.ip), c.allow)
		require.Equal(t, c.ok, ok, "%s (allow %v): %s", c.ip, c.allow, why)
		if !c.ok {
			require.Contains(t, why, c.why, c.ip)
		}
	}
	ok, _ := netguard.Allowed(netip.Addr{}, nil)
	require.False(t, ok, "the zero address is refused")
}

func TestParseAllowlist(t *testing.T) {
	t.Parallel()
	got, err := netguard.ParseAllowlist(" 127.0.0.0/8, ::1 ,10.20.0.0/16,")
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("10.20.0.0/16")}, got)
	none, err := netguard.ParseAllowlist("")
	require.NoError(t, err)
	require.Empty(t, none)
	for _, bad := range []string{"10.0.0.1/33", "localhost", "10.0.0.1/8", "10.0.0.0/8;"} {
		_, err := netguard.ParseAllowlist(bad)
		require.Error(t, err, bad)
	}
}

// The guard runs in a real dialer: a listener on loopback is unreachable through it
// unless loopback is allowlisted, whatever name the dialer was given.
func TestControlRefusesAtConnectTime(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan struct{}, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	strict := net.Dialer{Control: netguard.Guard{}.Control}
	for _, target := range []string{ln.Addr().String(), "localhost:" + port} {
		_, err := strict.DialContext(ctx, "tcp", target)
		require.ErrorIs(t, err, netguard.ErrRefused, target)
		var refused *netguard.RefusedError
		require.True(t, errors.As(err, &refused))
		require.Contains(t, refused.Reason, "loopback")
	}
	require.Empty(t, accepted, "no connection was made")

	allowed := net.Dialer{Control: netguard.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}.Control}
	c, err := allowed.DialContext(ctx, "tcp", ln.Addr().String())
	require.NoError(t, err)
	c.Close()
	select {
	case <-accepted:
	case <-ctx.Done():
		t.Fatal("the allowlisted connection never arrived")
	}
	_, err = allowed.DialContext(ctx, "udp", ln.Addr().String())
	require.ErrorIs(t, err, netguard.ErrRefused, "only TCP")
}
