package alerts_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/internal/alerts"
)

// What can be decided without DNS: scheme, Slack's host, literal addresses in every
// spelling, metadata names, localhost. (Names that resolve are covered end to end with a
// DNS server of the test's own, in e2e.)
func TestCheckURLWithoutDNS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	strict := alerts.EndpointPolicy{}
	dev := alerts.EndpointPolicy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	cases := []struct {
		policy alerts.EndpointPolicy
		typ    string
		url    string
		refuse string // part of the reason; "" when accepted
	}{
		{strict, alerts.ChannelWebhook, "https://203.0.113.7/hooks", ""},
		{strict, alerts.ChannelWebhook, "https://[2606:4700::1]:8443/hooks", ""},
		{strict, alerts.ChannelWebhook, "http://203.0.113.7/hooks", "GOVERNOR_ALERT_ALLOW_HTTP"},
		{dev, alerts.ChannelWebhook, "http://203.0.113.7/hooks", ""},
		{strict, alerts.ChannelWebhook, "ftp://203.0.113.7/", "https://"},
		{strict, alerts.ChannelWebhook, "/relative", "absolute"},
		{strict, alerts.ChannelWebhook, "", "absolute"},
		{strict, alerts.ChannelWebhook, "https://169.254.169.254/latest/meta-data/", "link-local"},
		{strict, alerts.ChannelWebhook, "https://127.0.0.1:5432/", "loopback"},
		{strict, alerts.ChannelWebhook, "https://localhost:7233/", "loopback"},
		{strict, alerts.ChannelWebhook, "https://LOCALHOST./", "loopback"},
		{strict, alerts.ChannelWebhook, "https://[::1]/", "loopback"},
		{strict, alerts.ChannelWebhook, "https://[::ffff:7f00:1]/", "loopback"},
		{strict, alerts.ChannelWebhook, "https://10.0.0.1/", "private"},
		{strict, alerts.ChannelWebhook, "https://metadata.google.internal/computeMetadata/v1/", "metadata"},
		{strict, alerts.ChannelWebhook, "https://METADATA.GOOGLE.INTERNAL./", "metadata"},
		{strict, alerts.ChannelWebhook, "https://0x7f.1/", "numeric"},
		{strict, alerts.ChannelWebhook, "https://017700000001/", "numeric"},
		{dev, alerts.ChannelWebhook, "http://127.0.0.1:9000/hooks", ""},
		{dev, alerts.ChannelWebhook, "http://localhost:9000/hooks", ""},
		{dev, alerts.ChannelWebhook, "https://10.0.0.1/", "private"},
		{dev, alerts.ChannelWebhook, "https://169.254.169.254/", "link-local"},
		{strict, alerts.ChannelSlack, "https://hooks.slack.com.evil.example/services/T/B/x", "hooks.slack.com"},
		{dev, alerts.ChannelSlack, "http://hooks.slack.com/services/T/B/x", "https"},
		{dev, alerts.ChannelSlack, "https://127.0.0.1/services/T/B/x", "hooks.slack.com"},
	}
	for _, c := range cases {
		err := c.policy.CheckURL(ctx, c.typ, c.url)
		if c.refuse == "" {
			require.NoError(t, err, c.url)
			continue
		}
		var ee *alerts.EndpointError
		require.True(t, errors.As(err, &ee), "%s: %v", c.url, err)
		require.False(t, ee.Temporary)
		require.Contains(t, ee.Reason, c.refuse, c.url)
	}
}

func TestDisplayURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ typ, in, want string }{
		{alerts.ChannelWebhook, "https://hooks.example.com/governor", "https://hooks.example.com/governor"},
		{alerts.ChannelWebhook, "https://hooks.example.com/governor?token=abc&x=1", "https://hooks.example.com/governor?****"},
		{alerts.ChannelWebhook, "https://user:pass@hooks.example.com:8443/a%20b?t=1#frag", "https://****@hooks.example.com:8443/a%20b?****"},
		{alerts.ChannelSlack, "https://hooks.slack.com/services/T000/B000/secretpart", "https://hooks.slack.com/services/T000/B000/****"},
		{alerts.ChannelSlack, "https://hooks.slack.com/services/T000/B000/****", "https://hooks.slack.com/services/T000/B000/****"},
	} {
		require.Equal(t, c.want, alerts.DisplayURL(c.typ, c.in), c.in)
		require.Equal(t, c.want, alerts.DisplayURL(c.typ, c.want), "idempotent: %s", c.want)
	}
}
