package logfollow

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Journal follows the systemd journal's mail facility with
// "journalctl -o json --follow", resuming after the saved cursor.
// Debian 12 installs no syslog daemon, so Postfix's lines are only there.
//
// Each entry is handed over as a syslog line with an RFC 3339 time stamp,
// "2026-11-23T15:09:34.123456Z host postfix/smtp[123]: message", so that
// one parser reads both sources.
type Journal struct {
	State string // the position file
	// Args are extra journalctl arguments: "--directory=DIR" or
	// "--file=PATH" to read journal files instead of the system journal.
	Args []string
	// Since is where a first start (no saved cursor) begins; default
	// "-1d" (the last day).
	Since string
	// Restart is the pause before journalctl is started again after it
	// exits; default 5s.
	Restart time.Duration
	Log     *slog.Logger
}

// journalCommand is the journalctl binary; tests may point it elsewhere.
var journalCommand = "journalctl"

// Follow implements Follower.
func (j *Journal) Follow(ctx context.Context, h Handler) error {
	log := j.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	restart := j.Restart
	if restart <= 0 {
		restart = 5 * time.Second
	}
	pos, err := loadPosition(j.State)
	if err != nil {
		return err
	}
	sv := &saver{path: j.State, last: pos, saved: time.Now()}
	for {
		err := j.run(ctx, &pos, sv, h, log)
		if err := sv.save(pos, true); err != nil {
			log.Error("saving the journal cursor failed", "err", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		log.Error("journalctl stopped; starting it again", "err", err, "in", restart)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(restart):
		}
	}
}

// journalEntry holds the fields read from journalctl's JSON. MESSAGE is
// a string, or an array of bytes when it is not valid UTF-8.
type journalEntry struct {
	Cursor     string          `json:"__CURSOR"`
	Realtime   string          `json:"__REALTIME_TIMESTAMP"`
	Hostname   string          `json:"_HOSTNAME"`
	Identifier string          `json:"SYSLOG_IDENTIFIER"`
	SyslogPID  string          `json:"SYSLOG_PID"`
	PID        string          `json:"_PID"`
	Message    json.RawMessage `json:"MESSAGE"`
}

func (e *journalEntry) message() string {
	var s string
	if json.Unmarshal(e.Message, &s) == nil {
		return s
	}
	var b []byte
	var ints []int
	if json.Unmarshal(e.Message, &ints) == nil {
		for _, i := range ints {
			b = append(b, byte(i))
		}
	}
	return string(b)
}

// line renders an entry as a syslog line.
func (e *journalEntry) line() string {
	us, _ := strconv.ParseInt(e.Realtime, 10, 64)
	t := time.UnixMicro(us).UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	host := e.Hostname
	if host == "" {
		host = "-"
	}
	tag := e.Identifier
	if tag == "" {
		tag = "-"
	}
	pid := e.SyslogPID
	if pid == "" {
		pid = e.PID
	}
	if pid != "" {
		tag += "[" + pid + "]"
	}
	msg := strings.ReplaceAll(e.message(), "\n", " ")
	return t + " " + host + " " + tag + ": " + msg
}

// run runs journalctl once, until it exits or ctx ends.
func (j *Journal) run(ctx context.Context, pos *Position, sv *saver, h Handler, log *slog.Logger) error {
	// RFC 5424 facility 2 is mail: Postfix's syslog_facility default.
	args := append([]string{"-o", "json", "--follow", "--no-pager", "--quiet", "--all"}, j.Args...)
	if pos.Cursor != "" {
		args = append(args, "--after-cursor="+pos.Cursor)
	} else {
		since := j.Since
		if since == "" {
			since = "-1d"
		}
		args = append(args, "--since="+since)
	}
	args = append(args, "SYSLOG_FACILITY=2")
	cmd := exec.CommandContext(ctx, journalCommand, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("logfollow: start %s: %w", journalCommand, err)
	}
	// Save the cursor while entries flow, and when they pause.
	lines := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		r := bufio.NewReaderSize(out, 64<<10)
		for {
			b, err := r.ReadBytes('\n')
			if len(b) > 0 {
				lines <- b
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				readErr <- err
				close(lines)
				return
			}
		}
	}()
	tick := time.NewTicker(saveEvery)
	defer tick.Stop()
	for {
		select {
		case b, ok := <-lines:
			if !ok {
				err := <-readErr
				werr := cmd.Wait()
				if ctx.Err() != nil {
					return nil
				}
				return errors.Join(err, werr, fmt.Errorf("journalctl exited: %s", strings.TrimSpace(stderr.String())))
			}
			var e journalEntry
			if err := json.Unmarshal(b, &e); err != nil || e.Cursor == "" {
				continue
			}
			if !h(e.line()) {
				// Stop before this entry: the saved cursor is the one
				// before it, so the next start reads it again.
				if err := sv.save(*pos, true); err != nil {
					log.Error("saving the journal cursor failed", "err", err)
				}
				cmd.Cancel()
				return nil
			}
			pos.Cursor = e.Cursor
			if err := sv.save(*pos, false); err != nil {
				log.Error("saving the journal cursor failed", "err", err)
			}
		case <-tick.C:
			if err := sv.save(*pos, true); err != nil {
				log.Error("saving the journal cursor failed", "err", err)
			}
		}
	}
}
