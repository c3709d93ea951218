package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/postern-mail/postern/internal/directory"
	"github.com/postern-mail/postern/internal/telemetry"
	"github.com/postern-mail/postern/welcome"
)

const welcomeUsage = `usage: postern welcome [--dry-run [--out DIR]] [--user LOGIN [--force]] [--skip LOGIN] [--backfill SINCE]

Sends a welcome letter to every directory user created since the last run, once.
The first run records the existing accounts and sends nothing, unless --backfill.
Exit status: 0 done, 1 no such user (--user, --skip), 2 configuration error,
75 temporary failure (directory or SMTP server unavailable; the next run retries).
`

// welcomeCmd runs one welcome job; the systemd timer calls it without flags.
func welcomeCmd(cfgPath string, args []string, stdout, stderr io.Writer) int {
	var req welcome.Request
	var backfill string
	fs, path, err := subFlags("welcome", cfgPath, args, stderr, func(fs *flag.FlagSet) {
		fs.Usage = func() { fmt.Fprint(stderr, welcomeUsage); fs.PrintDefaults() }
		fs.BoolVar(&req.DryRun, "dry-run", false, "print the letters a run would send; send and record nothing")
		fs.StringVar(&req.OutDir, "out", "", "with --dry-run: also write each letter to DIR/LOGIN.eml")
		fs.StringVar(&req.User, "user", "", "send (or with --dry-run preview) the letter of this login only")
		fs.BoolVar(&req.Force, "force", false, "with --user: send even if the ledger says it was sent")
		fs.StringVar(&req.Skip, "skip", "", "record this login as wanting no letter, and send nothing")
		fs.StringVar(&backfill, "backfill", "", "first run only: also write to users created since `SINCE` (2006-01-02 or RFC 3339)")
	})
	if err != nil {
		return exitConfig
	}
	if fs.NArg() != 0 || (req.OutDir != "" && !req.DryRun) || (req.Force && req.User == "") {
		fs.Usage()
		return exitConfig
	}
	if backfill != "" {
		if req.Backfill, err = parseSince(backfill); err != nil {
			fmt.Fprintf(stderr, "postern welcome: --backfill %q: use 2006-01-02 or 2006-01-02T15:04:05Z07:00\n", backfill)
			return exitConfig
		}
	}
	c, ok := loadConfig(path, stderr)
	if !ok {
		return exitConfig
	}
	log, err := telemetry.NewLogger(stderr, c.Telemetry.LogFormat, c.Telemetry.LogLevel)
	if err != nil {
		fmt.Fprintln(stderr, "postern:", err)
		return exitConfig
	}
	opts, err := directory.OptionsFrom(c, log, nil)
	if err != nil {
		fmt.Fprintln(stderr, "postern:", err)
		return exitConfig
	}
	opts.StateFile = "" // a live read only; the daemons own the persisted snapshot
	job, err := welcome.New(welcome.Options{Config: c.Welcome, Directory: directory.New(opts), Log: log, Out: stdout})
	if err != nil {
		return welcomeExit(err, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err = job.Run(ctx, req)
	return welcomeExit(err, stderr)
}

// welcomeExit maps a run's outcome to the exit status the unit and the issue promise.
func welcomeExit(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "postern:", err)
	switch {
	case errors.Is(err, welcome.ErrConfig):
		return exitConfig
	case errors.Is(err, welcome.ErrNoSuchUser):
		return exitNotFound
	}
	return exitTempFail
}

func parseSince(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}
