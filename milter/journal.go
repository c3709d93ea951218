package milter

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/journal"
)

// record writes the message's envelope to the journal store and returns the new entry's
// id, which is all the message itself will carry.
func (d *Daemon) record(s *session, msg *message) (string, error) {
	mid, _ := msg.headerValue("Message-ID")
	e := &journal.Entry{
		ID:         journal.NewID(),
		Time:       d.now().UTC(),
		QueueID:    msg.queueID,
		ClientAddr: s.clientAddr,
		ClientName: s.clientName,
		Helo:       s.helo,
		Login:      msg.login,
		Sender:     msg.sender,
		Recipients: append([]string{}, msg.rcpts...),
		Direction:  string(msg.dir),
		MessageID:  mid,
		Size:       msg.size(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.journalTimeout)
	defer cancel()
	if err := d.store.Put(ctx, e); err != nil {
		d.metrics.journal.WithLabelValues("error").Inc()
		return "", err
	}
	d.metrics.journal.WithLabelValues("ok").Inc()
	return e.ID, nil
}

// expireJournal removes expired entries now and then (the file store; Redis expires
// keys by itself), until stop is closed.
func (d *Daemon) expireJournal(stop <-chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), every/2)
		n, err := d.store.Expire(ctx, d.now())
		cancel()
		if err != nil {
			d.log.Warn("milter: journal expiry incomplete", zap.Error(err))
		} else if n > 0 {
			d.log.Info("milter: expired journal entries", zap.Int("removed", n))
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}
