package alerts

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"time"

	"github.com/governor-hq/governor/db/dbsqlc"
)

// EmailMessage is an alert as a plain-text email (RFC 5322). Its Message-ID is the
// delivery's, so a retried send is recognisable as the same message.
func EmailMessage(a dbsqlc.Alert, from string, to []string, deliveryID string, now time.Time) []byte {
	var b bytes.Buffer
	subject := fmt.Sprintf("[Governor] [%s] %s", strings.ToUpper(a.Severity), a.Title)
	fmt.Fprintf(&b, "From: %s\r\n", from)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(to, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\r\n", now.UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@governor>\r\n", deliveryID)
	fmt.Fprintf(&b, "X-Governor-Alert-Id: %s\r\n", a.ID)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	body := a.Title + "\n"
	if a.Body != "" {
		body += "\n" + a.Body + "\n"
	}
	body += fmt.Sprintf("\nSeverity: %s\nKind: %s\nAlert: %s\n", a.Severity, a.Kind, a.ID)
	if a.EntityID != "" {
		body += fmt.Sprintf("About: %s %s\n", a.EntityType, a.EntityID)
	}
	body += fmt.Sprintf("Raised: %s\n", a.CreatedAt.UTC().Format(time.RFC3339))
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	return b.Bytes()
}

// mail sends a message through the configured SMTP server, upgrading to TLS with
// STARTTLS whenever the server offers it (and refusing a certificate that does not
// verify). 5xx replies are permanent; 4xx replies and network errors are retried.
func (d *Deliverer) mail(ctx context.Context, to []string, msg []byte) outcome {
	cfg := d.smtp
	if cfg.Addr == "" {
		return outcome{class: ClassConfig, err: "no SMTP server is configured (GOVERNOR_SMTP_ADDR)"}
	}
	if len(to) == 0 {
		return outcome{permanent: true, class: ClassConfig, err: "the channel has no recipients"}
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return outcome{permanent: true, class: ClassConfig, err: "bad SMTP address: " + err.Error()}
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return d.transportOutcome(ctx, err)
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	fail := func(step string, err error) outcome {
		code := smtpCode(err)
		o := outcome{statusCode: code, class: ClassSMTP, err: fmt.Sprintf("SMTP %s: %v", step, err)}
		if ctx.Err() != nil {
			o.class, o.err = ClassTimeout, fmt.Sprintf("SMTP %s: no answer within %s", step, d.timeout)
		}
		o.permanent = code >= 500
		return o
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fail("greeting", err)
	}
	defer c.Close()
	if err := c.Hello("governor"); err != nil {
		return fail("EHLO", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host, RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}); err != nil {
			return fail("STARTTLS", err)
		}
	}
	if cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", cfg.Username, cfg.Password, host)); err != nil {
			return fail("AUTH", err)
		}
	}
	from := cfg.From
	if from == "" {
		from = "governor@localhost"
	}
	if addr, err := mail.ParseAddress(from); err == nil {
		from = addr.Address
	}
	if err := c.Mail(from); err != nil {
		return fail("MAIL FROM", err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			return fail("RCPT TO "+rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fail("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fail("DATA", err)
	}
	if err := w.Close(); err != nil {
		return fail("DATA", err)
	}
	_ = c.Quit()
	return outcome{ok: true, class: ClassOK, statusCode: 250}
}
