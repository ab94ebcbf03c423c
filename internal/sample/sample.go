// Package sample holds realistic templates and recipients shared by the demo, the example
// host server and the golden-file tests.
package sample

import (
	"fmt"
	"text/template"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
)

// BaseURL is what the base_url helper returns.
const BaseURL = "https://ci.acme.example"

// Helpers are the host helpers the samples use.
func Helpers() template.FuncMap {
	return template.FuncMap{
		"app_name": func() string { return "Acme CI" },
		"base_url": func() string { return BaseURL },
	}
}

// The sample templates. Welcome and PasswordReset go by email, BuildFailed by webhook,
// Mention and WeeklyDigest to the inbox; WeeklyDigest is opt-in.
var (
	Welcome = notifications.Template{
		ID: uuid.MustParse("0b5e2a0e-6b0c-4f3b-9e51-2f0a3e6f1a01"), Name: "Welcome", Group: "Account", Kind: "system",
		TitleTemplate: "Welcome to {{app_name}}, {{.UserName}}",
		BodyTemplate:  "Your account **{{.UserUsername}}** is ready. Connect a repository and your first build starts within a minute.",
		Actions:       []notifications.TemplateAction{{Label: "Get started", URL: "{{base_url}}/start"}},
		Methods:       []notifications.Method{notifications.MethodSMTP}, EnabledByDefault: true,
	}
	PasswordReset = notifications.Template{
		ID: uuid.MustParse("0b5e2a0e-6b0c-4f3b-9e51-2f0a3e6f1a02"), Name: "Password reset", Group: "Account", Kind: "system",
		TitleTemplate: "Reset your {{app_name}} password",
		BodyTemplate:  "Someone asked to reset the password of **{{.UserUsername}}** from {{.Labels.ip}}.\n\nThe link expires in 30 minutes. If it was not you, ignore this email.",
		Actions:       []notifications.TemplateAction{{Label: "Reset password", URL: "{{base_url}}/reset?code={{.Labels.code}}"}},
		Methods:       []notifications.Method{notifications.MethodSMTP}, EnabledByDefault: true,
	}
	BuildFailed = notifications.Template{
		ID: uuid.MustParse("0b5e2a0e-6b0c-4f3b-9e51-2f0a3e6f1a03"), Name: "Build failed", Group: "CI", Kind: "event",
		TitleTemplate: "Build {{.Labels.build}} of {{.Labels.repo}} failed",
		BodyTemplate:  "The build **#{{.Labels.build}}** of `{{.Labels.repo}}` failed at step *{{.Labels.step}}*.\n\n- commit: {{.Labels.commit}}\n- author: {{.Labels.author}}",
		Actions:       []notifications.TemplateAction{{Label: "View logs", URL: "{{base_url}}/builds/{{.Labels.build}}"}},
		Methods:       []notifications.Method{notifications.MethodWebhook}, EnabledByDefault: true,
	}
	Mention = notifications.Template{
		ID: uuid.MustParse("0b5e2a0e-6b0c-4f3b-9e51-2f0a3e6f1a04"), Name: "Mention", Group: "Collaboration", Kind: "event",
		TitleTemplate: "{{.Labels.author}} mentioned you",
		BodyTemplate:  "{{.Labels.author}} mentioned you on **{{.Labels.repo}}**:\n\n> {{.Labels.excerpt}}",
		Actions:       []notifications.TemplateAction{{Label: "Open the discussion", URL: "{{base_url}}/{{url_path .Labels.repo}}/discussions/{{.Labels.thread}}"}},
		Methods:       []notifications.Method{notifications.MethodInbox}, EnabledByDefault: true,
	}
	WeeklyDigest = notifications.Template{
		ID: uuid.MustParse("0b5e2a0e-6b0c-4f3b-9e51-2f0a3e6f1a05"), Name: "Weekly digest", Group: "Digest", Kind: "digest",
		TitleTemplate: "Your week on {{app_name}}",
		BodyTemplate:  "{{.Labels.builds}} builds ran this week; {{.Labels.failed}} failed.",
		Methods:       []notifications.Method{notifications.MethodInbox}, EnabledByDefault: false,
	}
)

// Templates returns every sample template.
func Templates() []notifications.Template {
	return []notifications.Template{Welcome, PasswordReset, BuildFailed, Mention, WeeklyDigest}
}

// Labels returns plausible labels for template t, varied by n.
func Labels(t notifications.Template, n int) map[string]string {
	switch t.ID {
	case PasswordReset.ID:
		return map[string]string{"ip": fmt.Sprintf("203.0.113.%d", n%250+1), "code": fmt.Sprintf("%06d", (n*7919)%1000000)}
	case BuildFailed.ID:
		return map[string]string{"build": fmt.Sprint(1000 + n), "repo": "acme/api", "step": "test", "commit": fmt.Sprintf("%07x", n*2654435761%0xfffffff), "author": "grace"}
	case Mention.ID:
		return map[string]string{"author": "grace", "repo": "acme/api", "thread": fmt.Sprint(n), "excerpt": "Could you look at the flaky *integration* test? It fails on [main](https://evil.example) <b>twice</b>."}
	case WeeklyDigest.ID:
		return map[string]string{"builds": fmt.Sprint(40 + n%20), "failed": fmt.Sprint(n % 5)}
	}
	return nil
}

// Recipient returns the n-th sample user.
func Recipient(n int) notifications.Recipient {
	names := []string{"Ada Lovelace", "Grace Hopper", "Zoë Müller", "Linus", "Margaret Hamilton", "Ken Thompson"}
	name := names[n%len(names)]
	return notifications.Recipient{
		UserID:   uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "user-%d", n)),
		Email:    fmt.Sprintf("user%d@acme.example", n),
		Name:     name,
		Username: fmt.Sprintf("user%d", n),
	}
}

// Payload returns the payload the enqueuer would build for template t and recipient n
// (actions rendered with Helpers).
func Payload(t notifications.Template, n int) (notifications.MessagePayload, error) {
	r := Recipient(n)
	p := notifications.MessagePayload{
		Version: notifications.PayloadVersion, NotificationName: t.Name, NotificationTemplateID: t.ID.String(),
		UserID: r.UserID.String(), UserEmail: r.Email, UserName: r.Name, UserUsername: r.Username,
		Labels: Labels(t, n),
	}
	actions, err := notifications.NewRegistry(Helpers()).RenderActions(t, p)
	if err != nil {
		return p, err
	}
	p.Actions = actions
	return p, nil
}
