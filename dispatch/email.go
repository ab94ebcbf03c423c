package dispatch

import (
	"bytes"
	"embed"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"

	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/email"
	"github.com/notifykit/notifications/internal/markdown"
)

// Layouts holds the embedded default email layouts, layouts/email.html.tmpl (html/template)
// and layouts/email.txt.tmpl (text/template), to copy from when writing your own. Both
// execute over EmailData.
//
//go:embed layouts/*.tmpl
var Layouts embed.FS

var (
	defaultHTMLLayout = htmltemplate.Must(htmltemplate.ParseFS(Layouts, "layouts/email.html.tmpl"))
	defaultTextLayout = texttemplate.Must(texttemplate.ParseFS(Layouts, "layouts/email.txt.tmpl"))
)

// PreferencesPath is appended to the base_url helper to link to the recipient's
// notification preferences in the default layouts.
const PreferencesPath = "/settings/notifications"

// EmailData is what the email layouts execute over. The values a layout puts on one line
// (Title, RecipientName, AppName, BaseURL, PreferencesURL, each action's Label and URL)
// are single-line: control characters, CR and LF become spaces, so a user value cannot
// start a line of its own in the text part. Payload holds the values as they were.
type EmailData struct {
	// Title is the rendered title as plain text (also the Subject).
	Title string
	// BodyHTML is the rendered Markdown body as HTML, raw HTML dropped.
	BodyHTML htmltemplate.HTML
	// BodyText is the rendered Markdown body as plain text, links as "text (url)".
	BodyText string
	// Actions are the template's calls to action.
	Actions []notifications.Action
	// RecipientName is the user's name, or username, or empty.
	RecipientName string
	// AppName is the app_name helper's value, or "Notifications".
	AppName string
	// BaseURL is the base_url helper's value, or empty.
	BaseURL string
	// PreferencesURL is BaseURL + PreferencesPath, or empty without a base_url.
	PreferencesURL string
	// Payload is the whole message payload, for layouts that need more.
	Payload notifications.MessagePayload
}

// newEmailData renders the Markdown title and body and collects what layouts show.
func newEmailData(payload notifications.MessagePayload, title, body string, helpers texttemplate.FuncMap) (EmailData, error) {
	bodyHTML, err := markdown.ToHTML(body)
	if err != nil {
		return EmailData{}, err
	}
	d := EmailData{
		Title:         email.Sanitize(markdown.ToPlain(title)),
		BodyHTML:      htmltemplate.HTML(bodyHTML), //nolint:gosec // goldmark output with raw HTML dropped
		BodyText:      markdown.ToPlain(body),
		RecipientName: email.Sanitize(payload.UserName),
		AppName:       email.Sanitize(helperString(helpers, "app_name")),
		BaseURL:       strings.TrimRight(email.Sanitize(helperString(helpers, "base_url")), "/"),
		Payload:       payload,
	}
	for _, a := range payload.Actions {
		d.Actions = append(d.Actions, notifications.Action{Label: email.Sanitize(a.Label), URL: email.Sanitize(a.URL)})
	}
	if d.RecipientName == "" {
		d.RecipientName = email.Sanitize(payload.UserUsername)
	}
	if d.AppName == "" {
		d.AppName = "Notifications"
	}
	if d.BaseURL != "" {
		d.PreferencesURL = d.BaseURL + PreferencesPath
	}
	return d, nil
}

// helperString calls a no-argument helper returning a string (func() string, or
// func() (string, error)); anything else, or a missing helper, gives "".
func helperString(helpers texttemplate.FuncMap, name string) string {
	switch f := helpers[name].(type) {
	case func() string:
		return f()
	case func() (string, error):
		if s, err := f(); err == nil {
			return s
		}
	case string:
		return f
	}
	return ""
}

// renderLayouts executes the HTML and text layouts over d.
func renderLayouts(html *htmltemplate.Template, text *texttemplate.Template, d EmailData) (htmlOut, textOut string, err error) {
	var hb, tb bytes.Buffer
	if err := html.Execute(&hb, d); err != nil {
		return "", "", xerrors.Errorf("execute HTML layout: %w", err)
	}
	if err := text.Execute(&tb, d); err != nil {
		return "", "", xerrors.Errorf("execute text layout: %w", err)
	}
	return hb.String(), tb.String(), nil
}
