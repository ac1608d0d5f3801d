// Package netguard decides which network addresses Governor may connect to on behalf of a
// tenant (alert webhooks and Slack messages), and enforces it where it cannot be talked
// around: in the dialer, after DNS resolution, on the address actually being connected
// to. A hostname that resolved to a public address when a channel was created and to
// 127.0.0.1 at delivery time (DNS rebinding) is refused at delivery time.
//
// Refused: loopback, private (RFC 1918), CGNAT (100.64/10), link-local (including the
// cloud metadata address 169.254.169.254), IPv6 unique-local (fc00::/7) and link-local,
// unspecified, multicast, broadcast and other reserved ranges, and every IPv6 form that
// embeds an IPv4 address (v4-mapped, v4-compatible, NAT64, 6to4) of a refused one. An
// operator allowlist of CIDRs lets chosen targets through (tests and `governor dev`
// allow loopback that way).
package netguard

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
)

// refused are the ranges no tenant may reach, each with why.
var refused = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified (\"this network\") address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address (RFC 1918)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT address (RFC 6598)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address (cloud metadata services live here)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address (RFC 1918)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol assignment address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address (RFC 1918)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved or broadcast address"},
	{netip.MustParsePrefix("::/128"), "the unspecified address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("100::/64"), "a discard-only address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a local-use NAT64 address"},
	{netip.MustParsePrefix("fc00::/7"), "a unique-local address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
}

// IPv6 ranges whose addresses carry an IPv4 address: they reach whatever that one
// reaches, so they are judged by it.
var (
	v4Compatible = netip.MustParsePrefix("::/96")
	nat64        = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour    = netip.MustParsePrefix("2002::/16")
)

// embeddedV4 returns the IPv4 address an IPv6 address stands for, if it stands for one.
func embeddedV4(ip netip.Addr) (netip.Addr, bool) {
	if ip.Is4In6() {
		return ip.Unmap(), true
	}
	if !ip.Is6() {
		return netip.Addr{}, false
	}
	b := ip.As16()
	switch {
	case v4Compatible.Contains(ip) && ip != netip.IPv6Unspecified() && ip != netip.IPv6Loopback():
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case nat64.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// Allowed reports whether a connection to ip may be made, and why not when it may not.
// An address in the allowlist is allowed whatever its range (an IPv6 form of an IPv4
// address is allowed when either is listed).
func Allowed(ip netip.Addr, allow []netip.Prefix) (bool, string) {
	if !ip.IsValid() {
		return false, "not an IP address"
	}
	ip = ip.WithZone("")
	v4, hasV4 := embeddedV4(ip)
	for _, p := range allow {
		if p.Contains(ip) || (hasV4 && p.Contains(v4)) {
			return true, "allowlisted"
		}
	}
	for _, r := range refused {
		if r.prefix.Contains(ip) {
			return false, r.why
		}
	}
	if hasV4 {
		if ok, why := Allowed(v4, nil); !ok {
			return false, fmt.Sprintf("an IPv6 form of %s, %s", v4, why)
		}
	}
	return true, ""
}

// RefusedError is a connection the guard would not make.
type RefusedError struct {
	Addr   string
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused to connect to %s: %s (an operator can allow it with GOVERNOR_ALERT_ALLOW_CIDRS)", e.Addr, e.Reason)
}

// ErrRefused matches every RefusedError with errors.Is.
var ErrRefused = errors.New("address refused")

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Guard checks connections against the refused ranges and an allowlist.
type Guard struct {
	Allow []netip.Prefix
}

// Control is a net.Dialer Control function: it runs after name resolution, just before
// each connect, with the address being connected to, and refuses a disallowed one.
func (g Guard) Control(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return &RefusedError{Addr: address, Reason: "only TCP connections are made (not " + network + ")"}
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Fail closed: whatever this is, it was not judged.
		return &RefusedError{Addr: address, Reason: "not an IP address and port"}
	}
	if ok, why := Allowed(ap.Addr(), g.Allow); !ok {
		return &RefusedError{Addr: ap.Addr().String(), Reason: why}
	}
	return nil
}

// ParseAllowlist reads a comma-separated list of CIDRs or single addresses (taken as
// /32 or /128), e.g. "127.0.0.0/8, ::1, 10.20.0.0/16".
func ParseAllowlist(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if strings.Contains(part, "/") {
			p, err := netip.ParsePrefix(part)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR (e.g. 10.20.0.0/16): %v", part, err)
			}
			if p != p.Masked() {
				return nil, fmt.Errorf("%q has host bits set; did you mean %s?", part, p.Masked())
			}
			out = append(out, p)
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an IP address", part)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
