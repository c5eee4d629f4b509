package token

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// A key directory holds one file per key, named "<id>.key" (id 1-255),
// each containing the secret as hexadecimal. Rotation is: add a file with
// a higher id and reload; the old key keeps verifying until its file is
// removed.

// secretLen is the size of the secrets CreateKey writes.
const secretLen = 32

// randReader is the source of new secrets; replaced during tests.
var randReader io.Reader = rand.Reader

// LoadDir reads every key in dir. A key file that is readable by
// everyone is refused: anyone who can read it can forge unsubscribes.
func LoadDir(dir string) ([]Key, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("token: read key directory: %w", err)
	}
	var keys []Key
	for _, e := range ents {
		id, ok := keyID(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		k, err := readKey(filepath.Join(dir, e.Name()), id)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].ID < keys[j].ID })
	return keys, nil
}

// LoadKeyring is LoadDir followed by NewKeyring; an empty directory is
// an error.
func LoadKeyring(dir string) (*Keyring, error) {
	keys, err := LoadDir(dir)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("token: no key files (N.key) in %s", dir)
	}
	return NewKeyring(keys...)
}

// EnsureKey creates dir (mode 0700) and a first key (mode 0600) when dir
// holds none. It is safe to run from several processes at once. It
// reports whether it created a key.
func EnsureKey(dir string) (created bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("token: create key directory: %w", err)
	}
	keys, err := LoadDir(dir)
	if err != nil {
		return false, err
	}
	if len(keys) > 0 {
		return false, nil
	}
	_, err = CreateKey(dir, 1)
	if errors.Is(err, fs.ErrExist) {
		return false, nil // another process won the race
	}
	return err == nil, err
}

// CreateKey writes a new random key with the given id to dir, mode 0600.
// It never overwrites an existing key file (the error wraps fs.ErrExist).
func CreateKey(dir string, id uint8) (Key, error) {
	if id == 0 {
		return Key{}, fmt.Errorf("token: key id 0 is reserved")
	}
	secret := make([]byte, secretLen)
	if _, err := io.ReadFull(randReader, secret); err != nil {
		return Key{}, fmt.Errorf("token: random secret: %w", err)
	}
	path := filepath.Join(dir, strconv.Itoa(int(id))+".key")
	// The key is written whole under a temporary name, then linked to
	// its own: a reader (serve and a bounce pipe starting at once on a
	// fresh install) never sees it half written, and link(2), unlike
	// rename, refuses to replace a key another process made meanwhile.
	f, err := os.CreateTemp(dir, ".new-key-*")
	if err != nil {
		return Key{}, fmt.Errorf("token: create key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return Key{}, fmt.Errorf("token: create key: %w", err)
	}
	_, err = fmt.Fprintln(f, hex.EncodeToString(secret))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Key{}, fmt.Errorf("token: write key %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		return Key{}, fmt.Errorf("token: create key: %w", err)
	}
	return Key{ID: id, Secret: secret}, nil
}

func keyID(name string) (uint8, bool) {
	s, ok := strings.CutSuffix(name, ".key")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != s {
		return 0, false
	}
	return uint8(n), true
}

func readKey(path string, id uint8) (Key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Key{}, fmt.Errorf("token: %w", err)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return Key{}, fmt.Errorf("token: key file %s is readable by everyone (mode %#o); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("token: %w", err)
	}
	secret, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return Key{}, fmt.Errorf("token: key file %s: not hexadecimal: %v", path, err)
	}
	if len(secret) < MinSecret {
		return Key{}, fmt.Errorf("token: key file %s: %d-byte secret, at least %d needed", path, len(secret), MinSecret)
	}
	return Key{ID: id, Secret: secret}, nil
}
