// Command hostserver is a small but real net/http server that embeds the notifications
// library the way an application would:
//
//   - a pgxpool from DATABASE_URL, pgstore.Migrate, and the app's own users table;
//   - templates registered at start-up, handlers from environment configuration;
//   - a Manager delivering in the background, with Prometheus metrics on /metrics;
//   - POST /users creates a user and enqueues the welcome notification in the same
//     transaction (both happen or neither does);
//   - the in-app inbox: list (newest first, in pages: ?limit=, ?unread=true, and
//     ?cursor= with the next_cursor of the previous page), unread count, mark read, and a
//     live stream of new items as Server-Sent Events, fed across replicas by
//     LISTEN/NOTIFY;
//   - /healthz, and a graceful shutdown on SIGINT/SIGTERM that stops the Manager (flushing
//     its buffered results) within a deadline.
//
// Run it with DATABASE_URL=postgres://... go run ./examples/hostserver, then
//
//	curl -X POST localhost:8080/users -d '{"email":"ada@example.com","name":"Ada","username":"ada"}'
//	curl localhost:8080/users/<id>/inbox
//
// The user ID in the path stands in for your session's user; add your own authentication.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"cdr.dev/slog"
	"cdr.dev/slog/sloggers/sloghuman"
)

func main() {
	cfg, err := configFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostserver:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.Make(sloghuman.Sink(os.Stderr))
	if err := run(ctx, cfg, log, nil); err != nil {
		log.Error(context.Background(), "hostserver stopped", slog.Error(err))
		os.Exit(1)
	}
}

// config is the server's configuration, read from the environment.
type config struct {
	DatabaseURL     string        // DATABASE_URL, required
	Addr            string        // ADDR, default ":8080"
	BaseURL         string        // BASE_URL, default "http://localhost:8080"
	AppName         string        // APP_NAME, default "Hostserver"
	Schema          string        // NOTIFICATIONS_SCHEMA, default "notifications"
	AppSchema       string        // APP_SCHEMA (where the users table lives), default "public"
	ShutdownTimeout time.Duration // SHUTDOWN_TIMEOUT, default 20s

	SMTPSmarthost, SMTPFrom, SMTPUsername, SMTPPasswordFile, SMTPCAFile string // SMTP_*
	SMTPStartTLS                                                        bool   // SMTP_STARTTLS
	WebhookURL, WebhookSecret                                           string // WEBHOOK_URL, WEBHOOK_SECRET (base64, "whsec_" optional)
}

func configFromEnv(getenv func(string) string) (config, error) {
	or := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	c := config{
		DatabaseURL: getenv("DATABASE_URL"), Addr: or("ADDR", ":8080"), BaseURL: or("BASE_URL", "http://localhost:8080"),
		AppName: or("APP_NAME", "Hostserver"), Schema: or("NOTIFICATIONS_SCHEMA", "notifications"), AppSchema: or("APP_SCHEMA", "public"),
		SMTPSmarthost: getenv("SMTP_SMARTHOST"), SMTPFrom: getenv("SMTP_FROM"), SMTPUsername: getenv("SMTP_USERNAME"),
		SMTPPasswordFile: getenv("SMTP_PASSWORD_FILE"), SMTPCAFile: getenv("SMTP_CA_FILE"),
		WebhookURL: getenv("WEBHOOK_URL"), WebhookSecret: getenv("WEBHOOK_SECRET"),
	}
	if c.DatabaseURL == "" {
		return c, fmt.Errorf("DATABASE_URL must be set (postgres://user:password@host:5432/db)")
	}
	var err error
	if c.ShutdownTimeout, err = time.ParseDuration(or("SHUTDOWN_TIMEOUT", "20s")); err != nil || c.ShutdownTimeout <= 0 {
		return c, fmt.Errorf("SHUTDOWN_TIMEOUT %q must be a positive duration such as 20s", getenv("SHUTDOWN_TIMEOUT"))
	}
	if v := getenv("SMTP_STARTTLS"); v != "" {
		if c.SMTPStartTLS, err = strconv.ParseBool(v); err != nil {
			return c, fmt.Errorf("SMTP_STARTTLS %q must be true or false", v)
		}
	}
	if (c.SMTPSmarthost == "") != (c.SMTPFrom == "") {
		return c, fmt.Errorf("SMTP_SMARTHOST and SMTP_FROM must be set together")
	}
	return c, nil
}
