package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/address"
	"github.com/postern-mail/postern/internal/directory"
	"github.com/postern-mail/postern/internal/telemetry"
)

// lookup syncs the directory once (falling back to the persisted snapshot when the
// source is unreachable) and shows how it sees one address.
func lookup(cfgPath string, args []string, stdout, stderr io.Writer) int {
	var asJSON bool
	fs, path, err := subFlags("lookup", cfgPath, args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print one JSON object")
	})
	if err != nil {
		return exitConfig
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: postern lookup [--json] ADDRESS")
		return exitConfig
	}
	c, ok := loadConfig(path, stderr)
	if !ok {
		return exitConfig
	}
	log, err := telemetry.NewLogger(stderr, c.Telemetry.LogFormat, "warn")
	if err != nil {
		fmt.Fprintln(stderr, "postern:", err)
		return exitConfig
	}
	opts, err := directory.OptionsFrom(c, log, nil)
	if err != nil {
		fmt.Fprintln(stderr, "postern:", err)
		return exitConfig
	}
	opts.ReadOnlyState = true // the daemons own the state file
	dir := directory.New(opts)
	resolver := directory.NewResolver(dir, directory.PolicyFrom(c))
	if err := dir.LoadState(); err != nil {
		log.Debug("no usable persisted snapshot", zap.Error(err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Directory.LDAP.Timeout.D()+5*time.Second)
	defer cancel()
	if err := dir.Sync(ctx); err != nil {
		log.Warn("directory unreachable; answering from the persisted snapshot if it is recent enough", zap.Error(err))
	}

	res, err := resolver.Resolve(fs.Arg(0))
	switch {
	case errors.Is(err, address.ErrMalformed):
		fmt.Fprintf(stderr, "postern: %v\n", err)
		return exitNotFound
	case err != nil:
		fmt.Fprintf(stderr, "postern: temporary failure: %v\n", err)
		return exitTempFail
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		printResult(stdout, res)
	}
	if !res.Found() {
		return exitNotFound
	}
	return exitOK
}

func printResult(w io.Writer, r *directory.Result) {
	fmt.Fprintf(w, "query:     %s\nkind:      %s\n", r.Query, r.Kind)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-10s %s\n", k+":", v)
		}
	}
	line("canonical", r.Canonical)
	line("targets", strings.Join(r.Targets, ", "))
	line("login", r.Login)
	line("groups", strings.Join(r.Groups, ", "))
	fmt.Fprintf(w, "internal:  %v\n", r.Internal)
	if r.Disabled {
		line("note", "the account is disabled")
	}
	if r.Routed {
		line("note", "a routing form (quoted, %, ! or two @): never internal")
	}
}
