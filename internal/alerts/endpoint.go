package alerts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/governor-hq/governor/internal/netguard"
)

// SlackWebhookHost is the only host Slack channels post to.
const SlackWebhookHost = "hooks.slack.com"

// EndpointPolicy is where webhook and Slack channels may send: checked when a channel's
// URL is set (CheckURL) and again by the dialer of every delivery, on the address it
// actually connects to.
type EndpointPolicy struct {
	// Allow lets these ranges through although they are private, loopback, … (operator
	// setting GOVERNOR_ALERT_ALLOW_CIDRS; tests and `governor dev` allow loopback).
	Allow []netip.Prefix
	// AllowHTTP accepts plain http:// webhooks (GOVERNOR_ALERT_ALLOW_HTTP); Slack is always
	// https.
	AllowHTTP bool
	// Resolver resolves endpoint names, at creation and in the delivery dialer (nil: the
	// system's). Tests point it at a DNS server they control.
	Resolver *net.Resolver
	// RootCAs verifies receivers' certificates (nil: the system's roots).
	RootCAs *x509.CertPool
}

// EndpointError is a URL the policy refuses.
type EndpointError struct {
	Reason string
	// Address: refused for the address it is or resolves to (not for its form).
	Address bool
	// Temporary: the name could not be resolved for now (not refused for good).
	Temporary bool
}

func (e *EndpointError) Error() string { return e.Reason }

func refuse(format string, args ...any) error {
	return &EndpointError{Reason: fmt.Sprintf(format, args...)}
}

func refuseAddress(format string, args ...any) error {
	return &EndpointError{Reason: fmt.Sprintf(format, args...), Address: true}
}

// Names that reach cloud metadata services without going through DNS as we see it.
var metadataNames = map[string]bool{
	"metadata.google.internal": true, "metadata.goog": true, "metadata": true, "instance-data": true,
	"instance-data.ec2.internal": true,
}

// checkStatic checks what can be checked without resolving: scheme, host, Slack's host,
// literal addresses. It returns the host name to resolve ("" for a literal address).
func (p EndpointPolicy) checkStatic(channelType, raw string) (*url.URL, string, error) {
	u, err := url.Parse(raw)
	if raw == "" || err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return nil, "", refuse("an absolute https:// URL is required")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if channelType == ChannelSlack {
			return nil, "", refuse("Slack incoming webhooks are https://%s/…", SlackWebhookHost)
		}
		if !p.AllowHTTP {
			return nil, "", refuse("https is required (an operator can allow http:// with GOVERNOR_ALERT_ALLOW_HTTP)")
		}
	default:
		return nil, "", refuse("an absolute https:// URL is required, not %s://", u.Scheme)
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "" {
		return nil, "", refuse("the URL has no host")
	}
	if channelType == ChannelSlack && host != SlackWebhookHost {
		return nil, "", refuse("Slack channels post only to Slack's incoming-webhook host %s, not %s", SlackWebhookHost, host)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ok, why := netguard.Allowed(ip, p.Allow); !ok {
			return nil, "", refuseAddress("%s is %s", ip, why)
		}
		return u, "", nil
	}
	if metadataNames[host] {
		return nil, "", refuseAddress("%s is a cloud metadata service", host)
	}
	// "2130706433", "127.1", "0x7f.1": numeric spellings of addresses that some resolvers
	// turn into addresses without DNS. No real name ends in a numeric label.
	labels := strings.Split(host, ".")
	if last := labels[len(labels)-1]; strings.HasPrefix(last, "0x") || strings.Trim(last, "0123456789") == "" {
		return nil, "", refuseAddress("%s is a numeric address in a non-standard form", host)
	}
	return u, host, nil
}

// localhostAddrs answers names that never reach DNS (RFC 6761): localhost and *.localhost.
func localhostAddrs(host string) ([]netip.Addr, bool) {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}, true
	}
	return nil, false
}

// CheckURL checks a webhook or Slack URL when it is set: its form, then every address its
// host resolves to now. Delivery checks the address again at connect time, so a name that
// changes its answer later gains nothing.
func (p EndpointPolicy) CheckURL(ctx context.Context, channelType, raw string) error {
	_, host, err := p.checkStatic(channelType, raw)
	if err != nil || host == "" {
		return err
	}
	addrs, ok := localhostAddrs(host)
	if !ok {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		r := p.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		addrs, err = r.LookupNetIP(ctx, "ip", host)
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			return refuse("%s does not resolve (no such host)", host)
		case err != nil:
			return &EndpointError{Reason: fmt.Sprintf("%s could not be resolved now: %v", host, err), Temporary: true}
		case len(addrs) == 0:
			return refuse("%s has no addresses", host)
		}
	}
	for _, a := range addrs {
		if ok, why := netguard.Allowed(a, p.Allow); !ok {
			return refuseAddress("%s resolves to %s, %s", host, a.WithZone(""), why)
		}
	}
	return nil
}

// client is the HTTP client of deliveries: every connection goes through the guard, no
// proxy from the environment (a proxy would connect wherever it is asked), no redirects
// (a redirect is an answer, not a 2xx: a webhook is never re-posted elsewhere), and no
// connection kept between attempts: each attempt resolves the name and is judged on the
// address it connects to now (alerts are few; a handshake each is cheap).
func (p EndpointPolicy) client(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, Resolver: p.Resolver,
		Control: netguard.Guard{Allow: p.Allow}.Control}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			TLSClientConfig:     &tls.Config{RootCAs: p.RootCAs, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true,
			DisableKeepAlives:   true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// DisplayURL is the form of an endpoint that is stored in the clear and shown: Slack's
// secret path segment masked; a webhook without its user info and query (where
// receivers put tokens).
func DisplayURL(channelType, raw string) string {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return ""
	}
	out := u.Scheme + "://"
	if u.User != nil {
		out += "****@"
	}
	out += u.Host
	path := u.EscapedPath()
	if channelType == ChannelSlack {
		if i := strings.LastIndex(path, "/"); i >= 0 && i < len(path)-1 {
			path = path[:i+1] + "****"
		}
	}
	out += path
	if u.RawQuery != "" {
		out += "?****"
	}
	return out
}
