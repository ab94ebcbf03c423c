package dispatch

import (
	"errors"

	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
)

// HandlersConfig selects the built-in handlers for DefaultHandlers; a nil field leaves that
// method out.
type HandlersConfig struct {
	// SMTP configures email (notifications.MethodSMTP).
	SMTP *SMTPConfig
	// Webhook configures webhooks (notifications.MethodWebhook).
	Webhook *WebhookConfig
	// Inbox stores in-app notifications (notifications.MethodInbox).
	Inbox notifications.InboxStore
	// Broker publishes new inbox items to live subscribers. Default: none.
	Broker Broker
}

// DefaultHandlers builds the built-in handlers in one call, ready for
// notifications.NewManager. Every configuration problem is reported, not just the first.
func DefaultHandlers(cfg HandlersConfig) (map[notifications.Method]notifications.Handler, error) {
	handlers := make(map[notifications.Method]notifications.Handler)
	var problems []error
	if cfg.SMTP != nil {
		h, err := NewSMTP(*cfg.SMTP)
		if err != nil {
			problems = append(problems, err)
		} else {
			handlers[notifications.MethodSMTP] = h
		}
	}
	if cfg.Webhook != nil {
		h, err := NewWebhook(*cfg.Webhook)
		if err != nil {
			problems = append(problems, err)
		} else {
			handlers[notifications.MethodWebhook] = h
		}
	}
	if cfg.Inbox != nil {
		h, err := NewInbox(cfg.Inbox, cfg.Broker)
		if err != nil {
			problems = append(problems, err)
		} else {
			handlers[notifications.MethodInbox] = h
		}
	}
	if len(problems) > 0 {
		return nil, xerrors.Errorf("build default handlers: %w", errors.Join(problems...))
	}
	if len(handlers) == 0 {
		return nil, xerrors.New("build default handlers: HandlersConfig enables no handler (set SMTP, Webhook or Inbox)")
	}
	return handlers, nil
}
