// Package listener opens a daemon's listening socket: the one systemd passed by socket
// activation when there is one, otherwise a new one bound to the configured address.
package listener

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/postern-mail/postern/internal/config"
)

var (
	once      sync.Once
	activated map[string][]net.Listener
	actErr    error
)

// inherited returns the sockets systemd passed, by FileDescriptorName. systemd hands them
// over once per process, so they are read once.
func inherited() (map[string][]net.Listener, error) {
	once.Do(func() { activated, actErr = activation.ListenersWithNames() })
	return activated, actErr
}

// Open returns a listener for l. A socket passed by systemd whose FileDescriptorName is
// name is used as it is (its unit sets address, owner, group and mode); otherwise l is
// bound here. A unix socket replaces a stale socket file and ends up as the package's
// .socket units make it: mode 0660, group that of its directory. The package's
// tmpfiles.d entry makes /var/spool/postfix/postern _postern:postfix, mode 2750, so a
// socket there belongs to group postfix and Postfix's daemons (user postfix) can
// connect, as under socket activation.
func Open(l config.Listen, name string) (net.Listener, error) {
	fds, err := inherited()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	if lns := fds[name]; len(lns) > 0 && lns[0] != nil {
		return lns[0], nil
	}
	if l.IsZero() {
		return nil, fmt.Errorf("%s: no listener configured and no socket passed by systemd", name)
	}
	if l.Network == "unix" {
		return openUnix(l.Address)
	}
	ln, err := net.Listen("tcp", l.Address)
	if err != nil {
		return nil, fmt.Errorf("%s: listen on %s: %w", name, l, err)
	}
	return ln, nil
}

func openUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen on unix:%s: a file that is not a socket is in the way", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen on unix:%s: another process is serving it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen on unix:%s: remove the stale socket: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("listen on unix:%s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on unix:%s: %w", path, err)
	}
	if err := dirGroup(path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on unix:%s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on unix:%s: %w", path, err)
	}
	return ln, nil
}

// dirGroup gives the socket at path the group of its directory: the group of the
// clients that the directory lets in. In a set-group-ID directory the socket has it
// already, whoever the daemon runs as; otherwise it is changed, which takes root or a
// member of that group. A world-writable directory (/tmp) grants nothing by group, so
// there the socket keeps the daemon's group.
func dirGroup(path string) error {
	dir, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return err
	}
	if dir.Mode().Perm()&0o002 != 0 {
		return nil
	}
	sock, err := os.Lstat(path)
	if err != nil {
		return err
	}
	want := dir.Sys().(*syscall.Stat_t).Gid
	if sock.Sys().(*syscall.Stat_t).Gid == want {
		return nil
	}
	if err := os.Lchown(path, -1, int(want)); err != nil {
		name := strconv.FormatUint(uint64(want), 10)
		if g, err := user.LookupGroupId(name); err == nil {
			name = g.Name
		}
		return fmt.Errorf("give the socket the group %s of its directory, so that its clients can connect "+
			"(or make the directory set-group-ID: chmod g+s): %w", name, err)
	}
	return nil
}
