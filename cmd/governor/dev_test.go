package main

import (
	"bytes"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

// A taken API port is found before anything starts: the default falls back to a free
// port and says so; an address the user chose is an error naming the setting.
func TestDevChecksTheAPIAddressFirst(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	addr := taken.Addr().String()

	var out bytes.Buffer
	got, err := devHTTPAddr(addr, false, &out)
	require.NoError(t, err)
	require.NotEqual(t, addr, got)
	require.Contains(t, out.String(), addr+" is taken")
	require.Contains(t, out.String(), got)
	ln, err := net.Listen("tcp", got)
	require.NoError(t, err, "the fallback is free")
	require.NoError(t, ln.Close())

	_, err = devHTTPAddr(addr, true, &out)
	require.ErrorContains(t, err, "GOVERNOR_HTTP_ADDR")

	free, err := devHTTPAddr(got, true, &out)
	require.NoError(t, err)
	require.Equal(t, got, free)
}
