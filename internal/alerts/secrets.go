package alerts

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/envelope"
	"github.com/governor-hq/governor/internal/orgkeys"
)

// Credentials are a channel's secrets in the clear: the endpoint (a Slack URL is itself
// the credential; webhook URLs often carry tokens), the signing secret and the previous
// one kept during a rotation. They are stored only sealed with the organization's data
// key, each bound to its organization, channel and field.
type Credentials struct {
	URL        string
	Secret     string
	PrevSecret string
}

// Sealed are a channel's credentials as stored (nil for an empty one), and the display
// form of its endpoint.
type Sealed struct {
	DisplayURL string
	URL        []byte
	Secret     []byte
	PrevSecret []byte
}

// Field names in the associated data.
const (
	fieldURL        = "url"
	fieldSecret     = "secret"
	fieldPrevSecret = "prev_secret"
)

func credentialAD(orgID, channelID, field string) []byte {
	return envelope.AD("governor alert channel credential v1", orgID, channelID, field)
}

func sealField(dk envelope.DataKey, orgID, channelID, field, value string) []byte {
	if value == "" {
		return nil
	}
	return dk.Seal([]byte(value), credentialAD(orgID, channelID, field))
}

// Seal seals a channel's credentials with its organization's data key (made on first
// use, in db's transaction).
func Seal(ctx context.Context, db dbsqlc.DBTX, kr *envelope.Keyring, orgID, channelID, channelType string, c Credentials) (Sealed, error) {
	if c == (Credentials{}) {
		return Sealed{}, nil // an email channel: nothing to seal
	}
	dk, err := orgkeys.DataKey(ctx, db, kr, orgID)
	if err != nil {
		return Sealed{}, err
	}
	return Sealed{
		DisplayURL: DisplayURL(channelType, c.URL),
		URL:        sealField(dk, orgID, channelID, fieldURL, c.URL),
		Secret:     sealField(dk, orgID, channelID, fieldSecret, c.Secret),
		PrevSecret: sealField(dk, orgID, channelID, fieldPrevSecret, c.PrevSecret),
	}, nil
}

// Open returns a channel's credentials in the clear. A row written before credentials were
// sealed (and not sealed yet by SealPlaintext) is read as it is.
func Open(ctx context.Context, db dbsqlc.DBTX, kr *envelope.Keyring, ch dbsqlc.AlertChannel) (Credentials, error) {
	c := Credentials{URL: ch.Url, Secret: ch.Secret, PrevSecret: ch.PrevSecret}
	if ch.UrlEnc == nil && ch.SecretEnc == nil && ch.PrevSecretEnc == nil {
		return c, nil
	}
	dk, err := orgkeys.DataKey(ctx, db, kr, ch.OrgID)
	if err != nil {
		return Credentials{}, err
	}
	for _, f := range []struct {
		name string
		enc  []byte
		dst  *string
	}{{fieldURL, ch.UrlEnc, &c.URL}, {fieldSecret, ch.SecretEnc, &c.Secret}, {fieldPrevSecret, ch.PrevSecretEnc, &c.PrevSecret}} {
		if f.enc == nil {
			continue
		}
		pt, err := dk.Open(f.enc, credentialAD(ch.OrgID, ch.ID, f.name))
		if err != nil {
			return Credentials{}, fmt.Errorf("channel %s, %s: %w", ch.ID, f.name, err)
		}
		*f.dst = string(pt)
	}
	return c, nil
}

// HasPreviousSecret reports whether a rotated-out secret is kept (sealed or not).
func HasPreviousSecret(ch dbsqlc.AlertChannel) bool {
	return ch.PrevSecretEnc != nil || ch.PrevSecret != ""
}

// sealBatch is how many channels one transaction of SealPlaintext seals.
const sealBatch = 100

// SealPlaintext seals the credentials of channels written before they were sealed and
// clears their plaintext, in batches of one transaction each. Processes starting together
// share the work (each skips rows another has locked); running it again finds nothing.
// It returns how many channels it sealed.
func SealPlaintext(ctx context.Context, pool *pgxpool.Pool, kr *envelope.Keyring, log *slog.Logger) (int, error) {
	total := 0
	for {
		n := 0
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			q := dbsqlc.New()
			rows, err := q.ChannelsWithPlaintext(ctx, tx, sealBatch)
			if err != nil {
				return err
			}
			for _, ch := range rows {
				c := Credentials{Secret: ch.Secret, PrevSecret: ch.PrevSecret}
				display := ch.Url
				if ch.UrlEnc == nil && (ch.Type == ChannelWebhook || ch.Type == ChannelSlack) {
					c.URL = ch.Url
				}
				s, err := Seal(ctx, tx, kr, ch.OrgID, ch.ID, ch.Type, c)
				if err != nil {
					return err
				}
				if c.URL != "" {
					display = s.DisplayURL
				}
				if err := q.ChannelSeal(ctx, tx, dbsqlc.ChannelSealParams{ID: ch.ID, Url: display, UrlEnc: s.URL,
					SecretEnc: s.Secret, PrevSecretEnc: s.PrevSecret}); err != nil {
					return err
				}
			}
			n = len(rows)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("seal alert channel credentials: %w", err)
		}
		total += n
		if n < sealBatch {
			break
		}
	}
	if total > 0 {
		log.Info("sealed the credentials of alert channels written before encryption at rest", "channels", total)
	}
	return total, nil
}
