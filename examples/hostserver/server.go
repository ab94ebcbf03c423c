package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"text/template"
	"time"

	"cdr.dev/slog"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/dispatch"
	"github.com/notifykit/notifications/pgstore"
)

// welcome is sent to every new user.
var welcome = notifications.Template{
	ID:               uuid.MustParse("6a1f4f5e-2d0c-4b8e-9a43-0c7e5d1e0001"),
	Name:             "Welcome",
	Group:            "Account",
	Kind:             "system",
	TitleTemplate:    "Welcome to {{app_name}}, {{.UserName}}",
	BodyTemplate:     "Your account **{{.UserUsername}}** is ready.",
	Actions:          []notifications.TemplateAction{{Label: "Open {{app_name}}", URL: "{{base_url}}/"}},
	EnabledByDefault: true,
}

// app is the wired server.
type app struct {
	cfg      config
	log      slog.Logger
	pool     *pgxpool.Pool
	store    *pgstore.Store
	enqueuer *notifications.StoreEnqueuer
	manager  *notifications.Manager
	broker   *pgstore.InboxBroker
	registry *prometheus.Registry
	users    string        // the quoted users table
	closing  chan struct{} // closed when shutdown begins: ends open event streams
}

// run serves until ctx ends, then shuts down within cfg.ShutdownTimeout. onListen, if not
// nil, is called with the listening address once the server accepts connections.
func run(ctx context.Context, cfg config, log slog.Logger, onListen func(addr string)) error {
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.pool.Close()

	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second}
	srv.RegisterOnShutdown(func() { close(a.closing) })

	// The Manager and the broker run until the server is shut down; the errgroup owns them.
	bg, bgCtx := errgroup.WithContext(context.WithoutCancel(ctx))
	bgCtx, stopBackground := context.WithCancel(bgCtx)
	defer stopBackground()
	if err := a.manager.Run(bgCtx); err != nil {
		return err
	}
	brokerReady := make(chan struct{})
	bg.Go(func() error {
		once := false
		return a.broker.Run(bgCtx, func() {
			if !once {
				once = true
				close(brokerReady)
			}
		})
	})
	select {
	case <-brokerReady:
	case <-ctx.Done():
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	log.Info(ctx, "listening", slog.F("addr", l.Addr().String()))
	if onListen != nil {
		onListen(l.Addr().String())
	}

	select {
	case err := <-serveErr:
		stopBackground()
		_ = bg.Wait()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info(context.Background(), "shutting down", slog.F("deadline", cfg.ShutdownTimeout))
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	// Stop taking requests first (open SSE streams end with the broker below), then stop
	// the Manager: in-flight deliveries finish, buffered results are written.
	httpErr := srv.Shutdown(shutdownCtx)
	stopErr := a.manager.Stop(shutdownCtx)
	stopBackground()
	_ = bg.Wait()
	<-serveErr
	return errors.Join(httpErr, stopErr)
}

func newApp(ctx context.Context, cfg config, log slog.Logger) (*app, error) {
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	a := &app{cfg: cfg, log: log, pool: pool, users: pgx.Identifier{cfg.AppSchema, "users"}.Sanitize(), closing: make(chan struct{})}
	if err := a.init(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return a, nil
}

func (a *app) init(ctx context.Context) error {
	scfg := pgstore.Config{Schema: a.cfg.Schema, Logger: a.log}
	if err := pgstore.Migrate(ctx, a.pool, scfg); err != nil {
		return err
	}
	// The application's own table; yours already exists.
	if _, err := a.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+a.users+` (
		id uuid PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL, username text NOT NULL UNIQUE,
		created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("create users table: %w", err)
	}
	a.store = pgstore.New(a.pool, scfg)
	a.broker = a.store.NewInboxBroker()

	// One registry of helpers, for registration, the enqueuer and the Manager.
	templates := notifications.NewRegistry(template.FuncMap{
		"base_url": func() string { return a.cfg.BaseURL },
		"app_name": func() string { return a.cfg.AppName },
	})
	if err := templates.Register(ctx, a.store, welcome); err != nil {
		return err
	}

	hc := dispatch.HandlersConfig{Inbox: a.store, Broker: a.broker}
	ncfg := notifications.DefaultConfig()
	ncfg.Registry, ncfg.Logger = templates, a.log
	// Templates that list no methods go to the inbox, and by email too when SMTP is set.
	defaults := []notifications.Method{notifications.MethodInbox}
	if a.cfg.SMTPSmarthost != "" {
		hc.SMTP = &dispatch.SMTPConfig{
			Smarthost: a.cfg.SMTPSmarthost, From: a.cfg.SMTPFrom,
			Auth: dispatch.SMTPAuth{Username: a.cfg.SMTPUsername, PasswordFile: a.cfg.SMTPPasswordFile},
			TLS:  dispatch.SMTPTLS{StartTLS: a.cfg.SMTPStartTLS, CAFile: a.cfg.SMTPCAFile},
		}
		defaults = []notifications.Method{notifications.MethodSMTP, notifications.MethodInbox}
	}
	if a.cfg.WebhookURL != "" {
		hc.Webhook = &dispatch.WebhookConfig{URL: a.cfg.WebhookURL}
		if a.cfg.WebhookSecret != "" {
			hc.Webhook.Secrets = []string{a.cfg.WebhookSecret}
		}
	}
	handlers, err := dispatch.DefaultHandlers(hc)
	if err != nil {
		return err
	}

	a.registry = prometheus.NewRegistry()
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ncfg.Metrics = notifications.NewMetrics(a.registry, notifications.MetricsConfig{})
	a.manager, err = notifications.NewManager(a.store, handlers, ncfg)
	if err != nil {
		return err
	}
	a.enqueuer, err = notifications.NewStoreEnqueuer(a.store, notifications.EnqueuerConfig{
		Registry:       templates,
		DefaultMethods: defaults,
		Lookup:         a.lookup,
	})
	return err
}

// lookup finds a recipient in the users table.
func (a *app) lookup(ctx context.Context, id uuid.UUID) (notifications.Recipient, error) {
	r := notifications.Recipient{UserID: id}
	err := a.pool.QueryRow(ctx, `SELECT email, name, username FROM `+a.users+` WHERE id = $1`, id).Scan(&r.Email, &r.Name, &r.Username)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("user %s: %w", id, notifications.ErrNotFound)
	}
	return r, err
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /users", a.createUser)
	mux.HandleFunc("GET /users/{user}/inbox", a.listInbox)
	mux.HandleFunc("GET /users/{user}/inbox/unread-count", a.unreadCount)
	mux.HandleFunc("POST /users/{user}/inbox/{item}/read", a.markRead)
	mux.HandleFunc("GET /users/{user}/inbox/stream", a.stream)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", a.healthz)
	return mux
}

type newUser struct {
	// ID is optional: clients may choose the ID (to subscribe to the inbox stream first).
	ID       uuid.UUID `json:"id"`
	Email    string    `json:"email"`
	Name     string    `json:"name"`
	Username string    `json:"username"`
}

// createUser inserts the user and enqueues the welcome notification in one transaction.
func (a *app) createUser(w http.ResponseWriter, r *http.Request) {
	var in newUser
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		httpError(w, http.StatusBadRequest, "request body must be a JSON object with email, name and username: "+err.Error())
		return
	}
	if in.Email == "" || in.Username == "" {
		httpError(w, http.StatusBadRequest, "email and username are required")
		return
	}
	id := in.ID
	if id == uuid.Nil {
		id = uuid.New()
	}
	var msgIDs []uuid.UUID
	err := pgx.BeginFunc(r.Context(), a.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(r.Context(), `INSERT INTO `+a.users+` (id, email, name, username) VALUES ($1, $2, $3, $4)`,
			id, in.Email, in.Name, in.Username); err != nil {
			return err
		}
		// In the user's transaction: rolled back with it. Send, not SendAtomic: a refused
		// welcome (its template deleted, say) is logged and does not undo the signup;
		// invalid input does.
		res, err := a.enqueuer.SendTx(r.Context(), tx, notifications.EnqueueRequest{
			TemplateID: welcome.ID, UserID: id, CreatedBy: "signup",
			Recipient:      &notifications.Recipient{UserID: id, Email: in.Email, Name: in.Name, Username: in.Username},
			IdempotencyKey: "welcome:" + id.String(),
		})
		if err != nil {
			return err
		}
		if err := res[0].Err; err != nil {
			if errors.Is(err, notifications.ErrInvalidMessage) {
				return err
			}
			a.log.Warn(r.Context(), "welcome notification refused", slog.Error(err))
		}
		msgIDs = res[0].MessageIDs
		return nil
	})
	if err == nil {
		a.store.Wake() // committed: start the notifiers on it now
	}
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "23505":
		httpError(w, http.StatusConflict, "a user with this email or username exists")
		return
	case errors.Is(err, notifications.ErrInvalidMessage):
		httpError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		a.log.Error(r.Context(), "create user", slog.Error(err))
		httpError(w, http.StatusInternalServerError, "could not create the user")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": id, "notifications": msgIDs})
}

// inboxItem is the JSON form of an inbox item.
type inboxItem struct {
	ID        uuid.UUID              `json:"id"`
	Title     string                 `json:"title"`
	Content   string                 `json:"content"`
	Actions   []notifications.Action `json:"actions"`
	CreatedAt time.Time              `json:"created_at"`
	Read      bool                   `json:"read"`
}

func toJSON(it notifications.InboxItem) inboxItem {
	return inboxItem{ID: it.ID, Title: it.Title, Content: it.Content, Actions: it.Actions, CreatedAt: it.CreatedAt, Read: !it.ReadAt.IsZero()}
}

func (a *app) listInbox(w http.ResponseWriter, r *http.Request) {
	user, ok := pathUUID(w, r, "user")
	if !ok {
		return
	}
	f := notifications.InboxQuery{UnreadOnly: r.URL.Query().Get("unread") == "true"}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			httpError(w, http.StatusBadRequest, "limit must be a number from 1 to 500")
			return
		}
		f.Limit = n
	}
	f.Cursor = r.URL.Query().Get("cursor")
	page, err := a.store.InboxItems(r.Context(), user, f)
	if errors.Is(err, notifications.ErrInvalidCursor) {
		httpError(w, http.StatusBadRequest, "cursor must be the next_cursor of an earlier page")
		return
	}
	if err != nil {
		a.log.Error(r.Context(), "list inbox", slog.Error(err))
		httpError(w, http.StatusInternalServerError, "could not list the inbox")
		return
	}
	out := inboxPage{Items: make([]inboxItem, 0, len(page.Items)), NextCursor: page.NextCursor}
	for _, it := range page.Items {
		out.Items = append(out.Items, toJSON(it))
	}
	writeJSON(w, http.StatusOK, out)
}

// inboxPage is one page of the inbox, newest first; pass next_cursor as ?cursor= for the
// next page ("" on the last). Pages are stable while new items arrive.
type inboxPage struct {
	Items      []inboxItem `json:"items"`
	NextCursor string      `json:"next_cursor"`
}

func (a *app) unreadCount(w http.ResponseWriter, r *http.Request) {
	user, ok := pathUUID(w, r, "user")
	if !ok {
		return
	}
	n, err := a.store.UnreadInboxCount(r.Context(), user)
	if err != nil {
		a.log.Error(r.Context(), "count unread", slog.Error(err))
		httpError(w, http.StatusInternalServerError, "could not count unread items")
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"unread": n})
}

func (a *app) markRead(w http.ResponseWriter, r *http.Request) {
	user, ok := pathUUID(w, r, "user")
	if !ok {
		return
	}
	item, ok := pathUUID(w, r, "item")
	if !ok {
		return
	}
	err := a.store.MarkInboxRead(r.Context(), user, item)
	switch {
	case errors.Is(err, notifications.ErrNotFound):
		httpError(w, http.StatusNotFound, "no such inbox item for this user")
	case err != nil:
		a.log.Error(r.Context(), "mark read", slog.Error(err))
		httpError(w, http.StatusInternalServerError, "could not mark the item read")
	default:
		// Every open screen of the user follows the read state.
		_ = a.broker.Publish(r.Context(), notifications.InboxEvent{Kind: notifications.InboxEventRead, UserID: user, ItemID: item})
		w.WriteHeader(http.StatusNoContent)
	}
}

// stream sends the user's inbox events as Server-Sent Events until the client leaves or the
// server shuts down: "notification" with a new item, "read" (and the other kinds) with the
// item's ID.
func (a *app) stream(w http.ResponseWriter, r *http.Request) {
	user, ok := pathUUID(w, r, "user")
	if !ok {
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	events := a.broker.Subscribe(r.Context(), user)
	// The comment tells the client it is subscribed: nothing published from now on is missed.
	if _, err := fmt.Fprint(w, ": subscribed\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	for {
		var ev notifications.InboxEvent
		select {
		case <-a.closing:
			return
		case v, ok := <-events:
			if !ok {
				return
			}
			ev = v
		}
		var name string
		var data any
		if ev.Kind == notifications.InboxEventCreated {
			name, data = "notification", toJSON(ev.Item)
		} else {
			name, data = string(ev.Kind), map[string]uuid.UUID{"id": ev.ItemID}
		}
		b, err := json.Marshal(data)
		if err != nil {
			continue
		}
		if _, err := fmt.Fprintf(w, "event: %s\nid: %s\ndata: %s\n\n", name, ev.ItemID, b); err != nil || rc.Flush() != nil {
			return
		}
	}
}

func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.pool.Ping(ctx); err != nil {
		httpError(w, http.StatusServiceUnavailable, "database unreachable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "pending_result_writes": pendingWrites(a.manager)})
}

func pendingWrites(m *notifications.Manager) int {
	sent, failed := m.BufferedUpdatesCount()
	return sent + failed
}

func pathUUID(w http.ResponseWriter, r *http.Request, name string) (uuid.UUID, bool) {
	id, err := uuid.Parse(r.PathValue(name))
	if err != nil {
		httpError(w, http.StatusBadRequest, name+" must be a UUID")
		return uuid.Nil, false
	}
	return id, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
