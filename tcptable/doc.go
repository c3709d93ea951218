// Package tcptable is `postern tcptable`: Postfix lookup tables answered from the
// directory snapshot, over socketmap_table(5) (one listener, every map) and
// tcp_table(5) (one listener per map).
//
// Postfix sends these tables the full key only, in the client's case: no +extension
// retry and no @domain retry. So every map hands the key to the directory's resolver,
// which folds case, splits the extension, maps alias domains, normalises IDN and trailing
// dots and refuses the routing forms.
//
// One Answer type carries every verdict to both protocols and to the log (answer.go);
// maps.go holds what each map answers, protocol.go the two wire formats with their
// limits, netstring.go and tcpcodec.go their codecs, server.go the connections, and
// daemon.go the service.Daemon.
package tcptable
