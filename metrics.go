package notifications

import (
	"context"
	"maps"
	"time"

	"cdr.dev/slog"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

// Metric label values for dispatch_attempts_total's result label.
const (
	ResultSent             = "sent"
	ResultTemporaryFailure = "temporary_failure"
	ResultPermanentFailure = "permanent_failure"
	ResultInhibited        = "inhibited"
)

// Metrics are the Prometheus metrics of a Manager. Create them once per registry with
// NewMetrics and pass them in Config.Metrics; several Managers may share one Metrics. A
// Manager resolves the series of each method and template once and keeps them: do not
// Reset or Delete series of these vectors while a Manager runs.
type Metrics struct {
	// DispatchAttempts counts delivery outcomes by method, template and result.
	DispatchAttempts *prometheus.CounterVec
	// RetryCount observes the attempt number of every retried delivery.
	RetryCount *prometheus.HistogramVec
	// QueuedSeconds observes the time from enqueue to a message's first lease (retries are
	// not observed again).
	QueuedSeconds *prometheus.HistogramVec
	// InflightDispatches is the number of deliveries running now.
	InflightDispatches *prometheus.GaugeVec
	// DispatcherSendSeconds observes how long deliveries take.
	DispatcherSendSeconds *prometheus.HistogramVec
	// PendingUpdates is the number of results buffered and not yet written to the store.
	PendingUpdates prometheus.Gauge
	// SyncedUpdates counts results written to the store.
	SyncedUpdates prometheus.Counter
	// PendingMessages is the number of pending messages by method, read from the store
	// every minute when it counts them (Store.PendingByMethod).
	PendingMessages *prometheus.GaugeVec
}

// pendingCounter is the part of Store a Manager reads, when its store has it, for the
// pending_messages gauge and to log, once a minute, the methods with pending messages that
// it has no handler for: during a rolling deploy they wait for a replica that can deliver
// them; if none runs, they wait forever.
type pendingCounter interface {
	PendingByMethod(ctx context.Context) (map[Method]int, error)
}

// pendingCheckInterval is how often a Manager reads PendingByMethod.
const pendingCheckInterval = time.Minute

// checkPending updates the pending_messages gauge and logs methods nobody here handles.
func (m *Manager) checkPending(ctx context.Context, counter pendingCounter) {
	counts, err := counter.PendingByMethod(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn(ctx, "count pending messages by method", slog.Error(err))
		}
		return
	}
	m.metrics.PendingMessages.Reset()
	unhandled := map[string]int{}
	for method, n := range counts {
		m.metrics.PendingMessages.WithLabelValues(string(method)).Set(float64(n))
		if _, ok := m.handlers[method]; !ok {
			unhandled[string(method)] = n
		}
	}
	if len(unhandled) > 0 {
		m.log.Warn(ctx, "pending messages of methods this Manager has no handler for; they wait for a replica that has one",
			slog.F("pending_by_method", unhandled))
	}
}

// MetricsConfig names the metrics NewMetrics creates.
type MetricsConfig struct {
	// Namespace prefixes every metric name. Default (""): "notifications".
	Namespace string
	// Subsystem goes between the namespace and the name. Default: none.
	Subsystem string
}

const (
	labelMethod     = "method"
	labelTemplateID = "notification_template_id"
	labelResult     = "result"
)

// NewMetrics creates the metrics and registers them on reg (which may be nil to skip
// registration). It panics, like prometheus.MustRegister, if they are already registered.
func NewMetrics(reg prometheus.Registerer, cfg MetricsConfig) *Metrics {
	o := struct{ namespace, subsystem string }{cfg.Namespace, cfg.Subsystem}
	if o.namespace == "" {
		o.namespace = "notifications"
	}
	m := &Metrics{
		DispatchAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: o.namespace, Subsystem: o.subsystem, Name: "dispatch_attempts_total",
			Help: "Delivery attempts by method, template and result (sent, temporary_failure, permanent_failure, inhibited).",
		}, []string{labelMethod, labelTemplateID, labelResult}),
		RetryCount: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: o.namespace, Subsystem: o.subsystem, Name: "retry_count",
			Help:    "Attempt number of deliveries that were retries (attempt 2 and later).",
			Buckets: prometheus.LinearBuckets(2, 1, 10),
		}, []string{labelMethod, labelTemplateID}),
		QueuedSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: o.namespace, Subsystem: o.subsystem, Name: "queued_seconds",
			Help:    "Time from enqueue to lease.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 3600},
		}, []string{labelMethod}),
		InflightDispatches: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: o.namespace, Subsystem: o.subsystem, Name: "inflight_dispatches",
			Help: "Deliveries running now.",
		}, []string{labelMethod, labelTemplateID}),
		DispatcherSendSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: o.namespace, Subsystem: o.subsystem, Name: "dispatcher_send_seconds",
			Help:    "Duration of deliveries.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{labelMethod}),
		PendingUpdates: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: o.namespace, Subsystem: o.subsystem, Name: "pending_updates",
			Help: "Delivery results buffered and not yet written to the store.",
		}),
		SyncedUpdates: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: o.namespace, Subsystem: o.subsystem, Name: "synced_updates_total",
			Help: "Delivery results written to the store.",
		}),
		PendingMessages: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: o.namespace, Subsystem: o.subsystem, Name: "pending_messages",
			Help: "Pending messages by method (read from the store every minute).",
		}, []string{labelMethod}),
	}
	if reg != nil {
		reg.MustRegister(m.DispatchAttempts, m.RetryCount, m.QueuedSeconds, m.InflightDispatches,
			m.DispatcherSendSeconds, m.PendingUpdates, m.SyncedUpdates, m.PendingMessages)
	}
	return m
}

// seriesKey names the metric series of one method and template.
type seriesKey struct {
	method   string
	template uuid.UUID
}

// deliverySeries are the metric series a delivery of one method and template updates,
// resolved once: WithLabelValues hashes its labels and locks its vector on every call.
type deliverySeries struct {
	template     string // the notification_template_id label value
	queued, send prometheus.Observer
	retries      prometheus.Observer
	inflight     prometheus.Gauge
	sent         prometheus.Counter
}

// series returns the series of method and template id. The Manager keeps them in a
// copy-on-write map, so a lookup neither locks nor allocates.
func (m *Manager) series(method string, id uuid.UUID) *deliverySeries {
	key := seriesKey{method, id}
	if s, ok := (*m.seriesCache.Load())[key]; ok {
		return s
	}
	tmpl := id.String()
	s := &deliverySeries{
		template: tmpl,
		queued:   m.metrics.QueuedSeconds.WithLabelValues(method),
		send:     m.metrics.DispatcherSendSeconds.WithLabelValues(method),
		retries:  m.metrics.RetryCount.WithLabelValues(method, tmpl),
		inflight: m.metrics.InflightDispatches.WithLabelValues(method, tmpl),
		sent:     m.metrics.DispatchAttempts.WithLabelValues(method, tmpl, ResultSent),
	}
	m.seriesMu.Lock()
	defer m.seriesMu.Unlock()
	old := *m.seriesCache.Load()
	next := make(map[seriesKey]*deliverySeries, len(old)+1)
	if len(old) < maxCachedSeries {
		maps.Copy(next, old)
	}
	next[key] = s
	m.seriesCache.Store(&next)
	return s
}

// maxCachedSeries bounds the series cache; it starts over when full.
const maxCachedSeries = 1024
