package milter

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// spoolMem is how much of a body a spool keeps in memory before it
// moves to a file.
const spoolMem = 256 << 10

// spool keeps a message body for the copies of a bulk message: in
// memory while it is small, beyond spoolMem in an unlinked temporary
// file (mode 0600), so that a 50 MB message costs 256 KiB of memory,
// not 50 MB.
type spool struct {
	dir  string
	mem  bytes.Buffer
	file *os.File
	size int64
}

func newSpool(dir string) *spool { return &spool{dir: dir} }

func (s *spool) Write(p []byte) (int, error) {
	s.size += int64(len(p))
	if s.file == nil && s.mem.Len()+len(p) <= spoolMem {
		return s.mem.Write(p)
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, "senderkit-body-*")
		if err != nil {
			return 0, fmt.Errorf("spooling the body for copies: %w", err)
		}
		// Unlinked at once: nothing is left behind, even by a crash.
		os.Remove(f.Name())
		s.file = f
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			return 0, fmt.Errorf("spooling the body for copies: %w", err)
		}
		s.mem = bytes.Buffer{}
	}
	n, err := s.file.Write(p)
	if err != nil {
		err = fmt.Errorf("spooling the body for copies: %w", err)
	}
	return n, err
}

// reader returns the whole body from its start; each call starts over.
func (s *spool) reader() io.Reader {
	if s.file == nil {
		return bytes.NewReader(s.mem.Bytes())
	}
	return io.NewSectionReader(s.file, 0, s.size)
}

// close releases the file, if any.
func (s *spool) close() {
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
	s.mem = bytes.Buffer{}
}
