package milter

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// trafficLog writes one JSON line per message: when, which direction, the sender's
// domain, how many internal and external recipients, the size. Addresses only when the
// configuration asks for them. It is reopened on reload, so logrotate can move it.
type trafficLog struct {
	mu   sync.Mutex
	file *os.File
}

// trafficLine is one message in the traffic log.
type trafficLine struct {
	Time               time.Time `json:"time"`
	QueueID            string    `json:"queue_id,omitempty"`
	Direction          Direction `json:"direction"`
	Action             string    `json:"action"`
	SenderDomain       string    `json:"sender_domain"`
	InternalRecipients int       `json:"internal_recipients"`
	ExternalRecipients int       `json:"external_recipients"`
	Size               int64     `json:"size"`
	Sender             *string   `json:"sender,omitempty"`
	Recipients         []string  `json:"recipients,omitempty"`
}

// openTrafficLog opens path for appending; "" gives a log that writes nothing.
func openTrafficLog(path string) (*trafficLog, error) {
	if path == "" {
		return &trafficLog{}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("traffic log: %w (check milter.traffic_log.file)", err)
	}
	return &trafficLog{file: f}, nil
}

// write appends one line; a whole line goes in one write(2), so lines never interleave.
func (t *trafficLog) write(l trafficLine) error {
	if t == nil || t.file == nil {
		return nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.file == nil {
		return nil
	}
	_, err = t.file.Write(append(b, '\n'))
	return err
}

func (t *trafficLog) Close() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.file == nil {
		return nil
	}
	err := t.file.Close()
	t.file = nil
	return err
}
