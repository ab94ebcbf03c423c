// Package dispatch holds the built-in notifications.Handler implementations:
//
//   - SMTP: a multipart/alternative email (plain text, then HTML from the embedded or your
//     own layouts) over implicit TLS, STARTTLS or plain SMTP, with PLAIN or LOGIN auth.
//     4xx replies, network and TLS errors and oversized replies are retryable; 5xx
//     replies and configuration problems are permanent. SMTPUTF8 is used when an address
//     needs it.
//   - Webhook: a JSON POST signed with Standard Webhooks (base64 secrets, "whsec_"
//     optional). 408, 429, 5xx and network errors are retryable (a valid Retry-After sets
//     the delay, capped at WebhookConfig.MaxRetryAfter); other 4xx are permanent.
//     Addresses that are not globally reachable are refused at dial time unless allowed.
//   - Inbox: an in-app notification stored under the message ID (a redelivery is a no-op
//     success) and published to live subscribers through a Broker: MemoryBroker in one
//     process, pgstore.InboxBroker across replicas.
//
// DefaultHandlers wires the three in one call.
package dispatch
