package postfixlab

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// TB is the part of testing.TB the lab uses. A *testing.T is one; a
// Program is one for use outside tests (the demo).
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Failed() bool
	Cleanup(func())
}

// Program lets a program, not a test, run labs: Fatalf and Skipf end the
// function given to Run with an error, and cleanups run when it returns.
type Program struct {
	log      io.Writer
	mu       sync.Mutex
	failed   bool
	cleanups []func()
}

// NewProgram logs to log (io.Discard for silence).
func NewProgram(log io.Writer) *Program { return &Program{log: log} }

type abort struct{ err error }

// Run calls f, then the cleanups f registered (last first). It returns
// the error of a Fatalf or Skipf, or of a panic in f.
func (p *Program) Run(f func()) (err error) {
	defer func() {
		p.mu.Lock()
		cs := p.cleanups
		p.cleanups = nil
		p.mu.Unlock()
		for i := len(cs) - 1; i >= 0; i-- {
			cs[i]()
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			p.mu.Lock()
			p.failed = true
			p.mu.Unlock()
			if a, ok := r.(abort); ok {
				err = a.err
				return
			}
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	f()
	return nil
}

// Helper does nothing.
func (p *Program) Helper() {}

// Logf writes a line to the log.
func (p *Program) Logf(format string, args ...any) { fmt.Fprintf(p.log, format+"\n", args...) }

// Errorf logs and marks the run failed.
func (p *Program) Errorf(format string, args ...any) {
	p.mu.Lock()
	p.failed = true
	p.mu.Unlock()
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// Fatalf ends the function given to Run with this error.
func (p *Program) Fatalf(format string, args ...any) {
	panic(abort{fmt.Errorf(format, args...)})
}

// Skipf ends the function given to Run with this error: a program has
// no one to skip for.
func (p *Program) Skipf(format string, args ...any) { p.Fatalf(format, args...) }

// Failed reports whether Errorf or Fatalf was called.
func (p *Program) Failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

// Cleanup registers f to run when Run returns.
func (p *Program) Cleanup(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleanups = append(p.cleanups, f)
}

var _ TB = (*Program)(nil)
