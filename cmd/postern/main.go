// Command postern runs the postern daemons and operator tools; see `postern help`.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/postern-mail/postern/internal/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit statuses, as sysexits(3) and the packaging's RestartPreventExitStatus expect.
const (
	exitOK       = 0
	exitNotFound = 1
	exitConfig   = 2
	exitTempFail = 75 // EX_TEMPFAIL
)

const usage = `usage: postern [-c FILE] COMMAND [ARGS]

commands:
  run                     every enabled daemon in one process
  tcptable, policyd,      one daemon (Postfix tables, policy service,
  milter, lmtp-shadow     milter, archive LMTP server)
  lookup [--json] ADDRESS how the directory sees an address (exit 0 found, 1 unknown, 75 unavailable)
  welcome [--dry-run]     one-shot: welcome letters to new directory users (systemd timer)
  check-config            validate the configuration and print it, secrets redacted
  version                 print the version

-c, --config FILE  configuration file (default ` + config.DefaultPath + `)
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is main with its exit status returned, so tests can drive it.
func run(args []string, stdout, stderr io.Writer) int {
	global := flag.NewFlagSet("postern", flag.ContinueOnError)
	global.SetOutput(stderr)
	global.Usage = func() { fmt.Fprint(stderr, usage) }
	cfgPath := configFlag(global)
	if err := global.Parse(args); err != nil {
		return exitConfig
	}
	if global.NArg() == 0 {
		global.Usage()
		return exitConfig
	}
	cmd, rest := global.Arg(0), global.Args()[1:]
	switch cmd {
	case "version":
		fmt.Fprintf(stdout, "postern %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "check-config":
		return checkConfig(*cfgPath, rest, stdout, stderr)
	case "lookup":
		return lookup(*cfgPath, rest, stdout, stderr)
	case "welcome":
		return welcomeCmd(*cfgPath, rest, stdout, stderr)
	case "run":
		return runDaemons(*cfgPath, "", rest, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	if _, ok := findDaemon(cmd); ok {
		return runDaemons(*cfgPath, cmd, rest, stderr)
	}
	fmt.Fprintf(stderr, "postern: unknown command %q\n\n%s", cmd, usage)
	return exitConfig
}

// configFlag adds -c and --config to fs, so they work before or after the command.
func configFlag(fs *flag.FlagSet) *string {
	p := new(string)
	*p = config.DefaultPath
	fs.StringVar(p, "c", *p, "configuration file")
	fs.StringVar(p, "config", *p, "configuration file")
	return p
}

// subFlags parses a command's own flags, which may repeat -c.
func subFlags(name string, cfgPath string, args []string, stderr io.Writer, define func(*flag.FlagSet)) (*flag.FlagSet, string, error) {
	fs := flag.NewFlagSet("postern "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	p := configFlag(fs)
	*p = cfgPath
	if define != nil {
		define(fs)
	}
	err := fs.Parse(args)
	return fs, *p, err
}

// loadConfig loads the configuration, printing every problem on failure.
func loadConfig(path string, stderr io.Writer) (*config.Config, bool) {
	c, err := config.Load(path)
	if err != nil {
		var errs *config.Errors
		if errors.As(err, &errs) {
			fmt.Fprintln(stderr, errs.Error())
		} else {
			fmt.Fprintln(stderr, "postern:", err)
		}
		return nil, false
	}
	return c, true
}

func checkConfig(cfgPath string, args []string, stdout, stderr io.Writer) int {
	_, path, err := subFlags("check-config", cfgPath, args, stderr, nil)
	if err != nil {
		return exitConfig
	}
	c, ok := loadConfig(path, stderr)
	if !ok {
		return exitConfig
	}
	fmt.Fprint(stdout, c.Effective())
	fmt.Fprintf(stderr, "configuration %s is valid\n", path)
	return exitOK
}
