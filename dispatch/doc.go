// Package dispatch holds the built-in notifications.Handler implementations: Webhook
// (signed JSON POST), Inbox (in-app notifications with live subscribers) and, in
// progress, SMTP email.
package dispatch
