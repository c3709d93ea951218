package lmtpshadow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/postern-mail/postern/internal/config"
)

// Store delivers archive copies into the mailbox server over LMTP and, for Cyrus,
// prepares the folders over IMAP as the admin: creates them, gives the poster the "p"
// right and turns Cyrus's duplicate suppression off for each of them.
type Store struct {
	cfg   config.Store
	mu    sync.Mutex
	ready map[string]bool // "user@domain/Folder/Sub" ("user@domain/" for the INBOX) prepared
	delim string          // the IMAP hierarchy separator, learnt once
}

// NewStore returns a store for cfg.
func NewStore(cfg config.Store) *Store {
	return &Store{cfg: cfg, ready: map[string]bool{}}
}

// duplicateDeliver is Cyrus's per-mailbox switch (METADATA, RFC 5464; Cyrus 2.5 and
// later) that delivers a message into that mailbox even when a message with the same
// Message-ID was delivered there before. Cyrus's duplicate suppression (imapd.conf
// duplicatesuppression, on by default) would otherwise drop the second copy of a
// message archived by two transactions while still answering 250; with the switch set
// on every archive folder it can stay on for the users' mailboxes on the same server.
// Cyrus does not inherit it: a folder created below one that has it does not.
const duplicateDeliver = "/shared/vendor/cmu/cyrus-imapd/duplicatedeliver"

// errNoShadowMailbox is Ensure's error when the store has no such shadow mailbox: the
// store refuses the copy until an operator creates it.
var errNoShadowMailbox = errors.New("the shadow mailbox does not exist")

// Copy is one archive copy for one shadow mailbox.
type Copy struct {
	User, Domain, Folder string // shadow mailbox owner, its domain, the folder ("Outbound/2026/11")
}

// Recipient is the LMTP recipient that files the copy in its folder: user+Folder@domain.
func (c Copy) Recipient() string { return c.User + "+" + c.Folder + "@" + c.Domain }

// Deliver sends one message to every copy in one LMTP transaction and returns each
// copy's result: nil for 250, else an *smtp.SMTPError (4xx, 5xx) or a connection error.
func (s *Store) Deliver(ctx context.Context, sender string, copies []Copy, msg io.Reader) ([]error, error) {
	conn, err := dial(ctx, s.cfg.LMTP)
	if err != nil {
		return nil, fmt.Errorf("connect to the store's LMTP %s: %w", s.cfg.LMTP, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("postern-lmtp-shadow"); err != nil {
		return nil, fmt.Errorf("store LMTP LHLO: %w", err)
	}
	var opts *smtp.MailOptions
	if s.cfg.Poster != "" && s.cfg.Kind == "cyrus" { // Dovecot files by the detail alone
		opts = &smtp.MailOptions{Auth: &s.cfg.Poster}
	}
	if err := c.Mail(sender, opts); err != nil {
		return nil, fmt.Errorf("store LMTP MAIL FROM: %w", err)
	}
	results := make([]error, len(copies))
	var accepted []int
	for i, cp := range copies {
		if err := c.Rcpt(cp.Recipient(), nil); err != nil {
			results[i] = err
			continue
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		return results, nil
	}
	w, err := c.Data()
	if err != nil {
		return nil, fmt.Errorf("store LMTP DATA: %w", err)
	}
	if _, err := io.Copy(w, msg); err != nil {
		return nil, fmt.Errorf("store LMTP DATA: %w", err)
	}
	_, err = w.CloseWithLMTPResponse()
	var perRcpt smtp.LMTPDataError
	if err != nil && !errors.As(err, &perRcpt) {
		return nil, fmt.Errorf("store LMTP end of data: %w", err)
	}
	for _, i := range accepted {
		if e := perRcpt[copies[i].Recipient()]; e != nil {
			results[i] = e
		}
	}
	_ = c.Quit()
	return results, nil
}

// Ensure makes sure the copy's folder exists, that the poster may file into it, and that
// Cyrus keeps every copy filed there (and in the shadow INBOX, where Cyrus files a copy
// it cannot file in the folder): duplicatedeliver on each. Each mailbox is prepared once
// per process (and again after a reload), so a copy into a prepared folder costs no IMAP
// at all and a new month's folder three commands; preparing again is harmless. Dovecot
// creates folders on delivery (lmtp_save_to_detail_mailbox), keeps no duplicate
// database for LMTP, and needs nothing.
func (s *Store) Ensure(ctx context.Context, cp Copy) error {
	if s.cfg.Kind != "cyrus" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	owner := cp.User + "@" + cp.Domain + "/"
	if s.ready[owner+cp.Folder] {
		return nil
	}
	c, err := s.imapLogin(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if s.delim == "" {
		s.delim = "/"
		if list, err := c.List("", "", nil).Collect(); err == nil && len(list) > 0 && list[0].Delim != 0 {
			s.delim = string(list[0].Delim)
		}
	}
	// The INBOX first: an unknown shadow mailbox fails here, before any folder is made
	// for it.
	name, folder := "user"+s.delim+cp.User, ""
	if !s.ready[owner] {
		inbox := name + "@" + cp.Domain
		if err := s.keepDuplicates(c, inbox); err != nil {
			if notExists(err) {
				return fmt.Errorf("%w: %s (create it as the Cyrus admin): %w", errNoShadowMailbox, inbox, err)
			}
			return err
		}
		s.ready[owner] = true
	}
	// user/shadow/Outbound/2026/11@corp.example.test, each level in turn (RFC 3501 6.3.3).
	for i, part := range strings.Split(cp.Folder, "/") {
		if part == "" {
			continue // a folder template that renders nothing files in the INBOX
		}
		name += s.delim + part
		if i > 0 {
			folder += "/"
		}
		folder += part
		if s.ready[owner+folder] {
			continue
		}
		mbox := name + "@" + cp.Domain
		if err := c.Create(mbox, nil).Wait(); err != nil && !alreadyExists(err) {
			return fmt.Errorf("create archive folder %s as %s: %w", mbox, s.cfg.AdminUser, err)
		}
		if s.cfg.Poster != "" {
			if err := c.SetACL(mbox, imap.RightsIdentifier(s.cfg.Poster), imap.RightModificationAdd, imap.RightSet("p")).Wait(); err != nil {
				return fmt.Errorf("grant %s the p right on %s: %w", s.cfg.Poster, mbox, err)
			}
		}
		if err := s.keepDuplicates(c, mbox); err != nil {
			return err
		}
		s.ready[owner+folder] = true
	}
	return nil
}

// keepDuplicates sets duplicatedeliver on mbox, so Cyrus files every copy delivered to it.
func (s *Store) keepDuplicates(c *imapclient.Client, mbox string) error {
	on := []byte("true")
	if err := c.SetMetadata(mbox, map[string]*[]byte{duplicateDeliver: &on}).Wait(); err != nil {
		return fmt.Errorf("set %s on %s as %s (Cyrus would drop a second copy of a Message-ID there): %w",
			duplicateDeliver, mbox, s.cfg.AdminUser, err)
	}
	return nil
}

func (s *Store) imapLogin(ctx context.Context) (*imapclient.Client, error) {
	conn, err := dial(ctx, s.cfg.IMAP)
	if err != nil {
		return nil, fmt.Errorf("connect to the store's IMAP %s: %w", s.cfg.IMAP, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c := imapclient.New(conn, nil)
	if err := c.Login(s.cfg.AdminUser, s.cfg.AdminPassword.Reveal()).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("IMAP login as %s: %w (check lmtp_shadow.store.admin_user and admin_password_file)", s.cfg.AdminUser, err)
	}
	return c, nil
}

func alreadyExists(err error) bool {
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Code == imap.ResponseCodeAlreadyExists {
		return true
	}
	return strings.Contains(strings.ToLower(err.Error()), "already exists")
}

func notExists(err error) bool {
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Code == imap.ResponseCodeNonExistent {
		return true
	}
	return strings.Contains(strings.ToLower(err.Error()), "does not exist")
}

func dial(ctx context.Context, l config.Listen) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, l.Network, l.Address)
}
