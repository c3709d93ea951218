package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
	"github.com/postern-mail/postern/internal/service"
	"github.com/postern-mail/postern/internal/telemetry"
)

// runDaemons runs the named daemon, or with only == "" every enabled daemon, in one
// process until SIGTERM or SIGINT; SIGHUP reloads the configuration, keeping the running
// one if the new one is invalid.
func runDaemons(cfgPath, only string, args []string, stderr io.Writer) int {
	name := only
	if name == "" {
		name = "run"
	}
	var telemetryAddr string
	_, path, err := subFlags(name, cfgPath, args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&telemetryAddr, "telemetry", "", "serve /metrics here instead of telemetry.listen (one port per daemon unit)")
	})
	if err != nil {
		return exitConfig
	}
	c, ok := loadConfig(path, stderr)
	if !ok {
		return exitConfig
	}
	if err := overrideTelemetry(c, telemetryAddr); err != nil {
		fmt.Fprintln(stderr, "postern:", err)
		return exitConfig
	}
	if d, ok := findDaemon(only); ok && !d.enabled(c) {
		// Its section would not even have been validated: refuse rather than serve unconfigured.
		fmt.Fprintf(stderr, "postern %s: not configured in %s: set %s (under socket activation, the address its .socket unit listens on)\n",
			d.name, path, d.setting)
		return exitConfig
	}
	log, err := telemetry.NewLogger(stderr, c.Telemetry.LogFormat, c.Telemetry.LogLevel)
	if err != nil {
		fmt.Fprintln(stderr, "postern:", err)
		return exitConfig
	}
	defer log.Sync() //nolint:errcheck
	log.Info("starting", zap.String("version", version), zap.String("config", path), zap.String("effective", c.Effective()))

	reg := telemetry.NewRegistry()
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_config_reloads_total", Help: "Configuration reloads by result (success, failure).",
	}, []string{"result"})
	reloads.WithLabelValues("success")
	reloads.WithLabelValues("failure")
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "postern_build_info", Help: "The running version."}, []string{"version"})
	build.WithLabelValues(version).Set(1)
	reg.MustRegister(reloads, build)

	dir, resolver, err := directory.FromConfig(c, log, reg)
	if err != nil {
		log.Error("cannot set up the directory", zap.Error(err))
		return exitConfig
	}
	if err := os.MkdirAll(c.StateDir, 0o750); err != nil {
		log.Warn("cannot create the state directory; the snapshot will not survive a restart", zap.Error(err))
	}
	if err := dir.LoadState(); err != nil {
		log.Warn("persisted directory snapshot not used", zap.Error(err))
	}
	srv, err := telemetry.Listen(c.Telemetry.Listen.Address, reg, func() error { _, err := dir.Snapshot(); return err })
	if err != nil {
		log.Error("cannot start", zap.Error(err))
		return exitConfig
	}
	log.Info("telemetry listening", zap.String("addr", srv.Addr()))

	deps := service.Deps{Config: c, Log: log, Registry: reg, Directory: dir, Resolver: resolver}
	var running []service.Daemon
	for _, d := range daemons {
		if (only == "" && d.enabled(c)) || d.name == only {
			s, err := d.build(deps)
			if err == nil {
				err = s.Start()
			}
			if err != nil {
				log.Error("cannot start", zap.String("daemon", d.name), zap.Error(err))
				return exitConfig
			}
			log.Info("started", zap.String("daemon", d.name))
			running = append(running, s)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	firstSync := dir.Synced()
	go dir.Run(ctx)
	go func() {
		if err := srv.Serve(); err != nil {
			log.Error("telemetry server stopped", zap.Error(err))
		}
	}()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)

	// systemd (Type=notify): ready once every listener is bound and the directory has a
	// snapshot, or its first sync has at least been tried (answers are TEMP until then).
	if !dir.Ready() {
		<-firstSync
	}
	notify(log, sd.SdNotifyReady)
	for sig := range sigs {
		if sig != syscall.SIGHUP {
			log.Info("shutting down", zap.String("signal", sig.String()))
			notify(log, sd.SdNotifyStopping)
			break
		}
		notify(log, sd.SdNotifyReloading)
		next, err := config.Load(path)
		if err == nil {
			err = overrideTelemetry(next, telemetryAddr)
		}
		if err != nil {
			reloads.WithLabelValues("failure").Inc()
			log.Error("reload failed; keeping the running configuration", zap.Error(err))
			notify(log, sd.SdNotifyReady)
			continue
		}
		src, err := directory.SourceFrom(next.Directory)
		if err != nil {
			reloads.WithLabelValues("failure").Inc()
			log.Error("reload failed; keeping the running configuration", zap.Error(err))
			notify(log, sd.SdNotifyReady)
			continue
		}
		dir.Reconfigure(src, next.Directory.Refresh.D(), next.Directory.MaxStale.D())
		resolver.SetPolicy(directory.PolicyFrom(next))
		for _, d := range running {
			if err := d.Reload(next); err != nil {
				log.Error("reload incomplete", zap.String("daemon", d.Name()), zap.Error(err))
			}
		}
		if next.Telemetry.Listen != c.Telemetry.Listen {
			log.Warn("telemetry.listen changed; restart to apply it")
		}
		c = next
		notify(log, sd.SdNotifyReady)
		reloads.WithLabelValues("success").Inc()
		log.Info("configuration reloaded", zap.String("effective", c.Effective()))
	}

	// A second signal during the drain exits at once.
	go func() {
		<-sigs
		log.Warn("second signal: exiting now")
		os.Exit(1)
	}()
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	for i := len(running) - 1; i >= 0; i-- {
		if err := running[i].Shutdown(sctx); err != nil {
			log.Warn("drain incomplete", zap.String("daemon", running[i].Name()), zap.Error(err))
		}
	}
	cancel()
	_ = srv.Shutdown(sctx)
	log.Info("stopped")
	return exitOK
}

// notify tells systemd about the daemon's state; outside systemd it does nothing.
func notify(log *zap.Logger, state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		log.Warn("cannot notify systemd", zap.String("state", state), zap.Error(err))
	}
}

// overrideTelemetry applies --telemetry: the units of the separate daemons share one
// configuration file, so each gets its own metrics port on the command line.
func overrideTelemetry(c *config.Config, addr string) error {
	if addr == "" {
		return nil
	}
	l, err := config.ParseListen(addr)
	if err != nil || l.Network != "tcp" {
		return fmt.Errorf("--telemetry %q: use HOST:PORT", addr)
	}
	if !l.IsLoopback() && !c.AllowNonLoopback {
		return fmt.Errorf("--telemetry %s can be reached from other hosts; use 127.0.0.1 or set allow_non_loopback: true", addr)
	}
	c.Telemetry.Listen = l
	return nil
}
