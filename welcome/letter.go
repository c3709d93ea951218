package welcome

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
)

// templates are the parsed subject, HTML and text templates and the images the HTML
// may embed.
type templates struct {
	subject   *texttemplate.Template
	html      *htmltemplate.Template
	text      *texttemplate.Template
	from      *mail.Address
	envelope  string
	imagesDir string
	images    map[string]Image // by file name, read once
}

// Image is one inline picture of the HTML part.
type Image struct {
	CID         string // the Content-ID, without angle brackets, as the HTML refers to it
	File        string
	ContentType string
	Data        []byte
}

// Letter is one rendered welcome letter and the message that carries it.
type Letter struct {
	Key          string // the ledger key of the user
	Recipient    Recipient
	EnvelopeFrom string
	To           string // the envelope recipient: the user's primary address
	Subject      string
	Text         string
	HTML         string
	Images       []Image
	MessageID    string // without angle brackets
	Date         time.Time
	Raw          []byte // the complete MIME message, CRLF line ends, 7-bit

	obj *directory.Object
}

func loadTemplates(c config.Welcome) (*templates, error) {
	from, err := mail.ParseAddress(c.From)
	if err != nil {
		return nil, fmt.Errorf("welcome.from %q: %w", c.From, err)
	}
	t := &templates{from: from, envelope: c.EnvelopeFrom, imagesDir: c.ImagesDir, images: map[string]Image{}}
	if t.envelope == "" {
		t.envelope = from.Address
	}
	if t.subject, err = texttemplate.New("subject").Option("missingkey=zero").Parse(c.Subject); err != nil {
		return nil, fmt.Errorf("welcome.subject: %w", err)
	}
	html, err := os.ReadFile(c.HTMLTemplateFile)
	if err != nil {
		return nil, fmt.Errorf("welcome.html_template_file: %w", err)
	}
	if t.html, err = htmltemplate.New(filepath.Base(c.HTMLTemplateFile)).Option("missingkey=zero").Parse(string(html)); err != nil {
		return nil, fmt.Errorf("welcome.html_template_file: %w", err)
	}
	text, err := os.ReadFile(c.TextTemplateFile)
	if err != nil {
		return nil, fmt.Errorf("welcome.text_template_file: %w", err)
	}
	if t.text, err = texttemplate.New(filepath.Base(c.TextTemplateFile)).Option("missingkey=zero").Parse(string(text)); err != nil {
		return nil, fmt.Errorf("welcome.text_template_file: %w", err)
	}
	return t, nil
}

// render fills the templates for one user and builds the message. seq counts the
// letters this user was sent before (a forced resend), so only a resend gets a new
// Message-ID.
func (t *templates) render(r Recipient, key string, seq int, now time.Time) (*Letter, error) {
	l := &Letter{Key: key, Recipient: r, EnvelopeFrom: t.envelope, To: r.Mail, Date: now}
	var b bytes.Buffer
	if err := t.subject.Execute(&b, r); err != nil {
		return nil, fmt.Errorf("welcome.subject: %w", err)
	}
	l.Subject = oneLine(b.String())
	b.Reset()
	if err := t.text.Execute(&b, r); err != nil {
		return nil, fmt.Errorf("welcome.text_template_file: %w", err)
	}
	l.Text = b.String()
	b.Reset()
	if err := t.html.Execute(&b, r); err != nil {
		return nil, fmt.Errorf("welcome.html_template_file: %w", err)
	}
	l.HTML = b.String()
	var err error
	if l.Images, err = t.inlineImages(l.HTML); err != nil {
		return nil, err
	}
	l.MessageID = messageID(key, seq, t.from.Address)
	if l.Raw, err = buildMessage(l, t.from); err != nil {
		return nil, fmt.Errorf("welcome: build the message for %s: %w", r.Login, err)
	}
	return l, nil
}

// cidRef finds the cid: URLs (RFC 2392) the HTML refers to.
var cidRef = regexp.MustCompile(`(?i)\bcid:([^"'\s<>()]+)`)

// inlineImages returns the images the HTML refers to, each once, in order of first
// reference. cid:logo.png@corp refers to the file logo.png in images_dir: the part before
// "@" names the file, the whole is the Content-ID.
func (t *templates) inlineImages(html string) ([]Image, error) {
	var out []Image
	seen := map[string]bool{}
	for _, m := range cidRef.FindAllStringSubmatch(html, -1) {
		cid, err := url.PathUnescape(m[1])
		if err != nil || seen[cid] {
			continue
		}
		seen[cid] = true
		img, err := t.image(cid)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

func (t *templates) image(cid string) (Image, error) {
	file, _, _ := strings.Cut(cid, "@")
	if img, ok := t.images[file]; ok {
		img.CID = cid
		return img, nil
	}
	if file == "" || file != filepath.Base(file) || strings.HasPrefix(file, ".") {
		return Image{}, fmt.Errorf("welcome: the HTML refers to cid:%s; name a file in images_dir, e.g. cid:logo.png@welcome", cid)
	}
	path := filepath.Join(t.imagesDir, file)
	data, err := os.ReadFile(path)
	if err != nil {
		return Image{}, fmt.Errorf("welcome: the HTML refers to cid:%s: %w (check welcome.images_dir)", cid, err)
	}
	ct, err := imageType(file, data)
	if err != nil {
		return Image{}, fmt.Errorf("welcome: %s: %w", path, err)
	}
	img := Image{CID: cid, File: file, ContentType: ct, Data: data}
	t.images[file] = img
	return img, nil
}

// imageType names an inline image's media type from its extension, and checks that the
// bytes are that kind of image, so a mail reader is never sent a broken picture.
func imageType(name string, data []byte) (string, error) {
	want := map[string]string{".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
		".gif": "image/gif", ".webp": "image/webp", ".svg": "image/svg+xml"}[strings.ToLower(filepath.Ext(name))]
	switch {
	case want == "":
		return "", errors.New("not a png, jpeg, gif, webp or svg file name")
	case want == "image/svg+xml":
		if !bytes.Contains(data[:min(len(data), 1024)], []byte("<svg")) {
			return "", errors.New("does not hold an SVG image")
		}
	case http.DetectContentType(data) != want:
		return "", fmt.Errorf("holds %s, not %s", http.DetectContentType(data), want)
	}
	return want, nil
}
